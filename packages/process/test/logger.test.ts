/**
 * `createLogger`: a log that cannot be written (its disk is full) must not end the process. The
 * full disk is /dev/full, on which every write fails with ENOSPC.
 */
import { closeSync, existsSync, openSync } from 'node:fs'
import { expect, it, onTestFinished } from 'vitest'
import { createLogger } from '../src/index.js'

it.skipIf(!existsSync('/dev/full'))('keeps logging, without throwing, when every write fails with ENOSPC', () => {
  const fd = openSync('/dev/full', 'w')
  onTestFinished(() => { closeSync(fd) })
  const logger = createLogger('info', fd, { bufferedBytesMax: 4096 })
  // Past bufferedBytesMax the lines are dropped rather than kept.
  for (let i = 0; i < 200; i++) {
    expect(() => { logger.error({ i }, 'a line that cannot be written') }).not.toThrow()
  }
})
