/**
 * `takePidLock`: taken and released; refused while held (by this process or another live one);
 * taken over from a process that is gone, and from a lock naming this process that it did not
 * take (a container restarted on the same volume can give a new process its predecessor's pid).
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { takePidLock } from '../src/index.js'

/** The pid of a process that has exited. */
function deadPid (): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
  return Number(child.stdout)
}

describe('takePidLock', () => {
  it('writes this pid, refuses a second taker (in this process too) while held, and releases', async () => {
    const file = join(tmpDir('hsmlab-lock-'), 'x.pid')
    const lock = await takePidLock(file)
    if (!('release' in lock)) throw new Error(`not taken: held by ${lock.heldBy}`)
    expect(readFileSync(file, 'utf8')).toBe(`${process.pid}\n`)
    expect(await takePidLock(file)).toEqual({ heldBy: process.pid })
    await lock.release()
    expect(existsSync(file)).toBe(false)
    writeFileSync(file, `${process.ppid}\n`) // as if the parent, alive, held it
    expect(await takePidLock(file)).toEqual({ heldBy: process.ppid })
  })

  it('takes over a lock left by a process that is gone, or naming this process', async () => {
    const dir = tmpDir('hsmlab-lock-')
    for (const stale of [deadPid(), process.pid, 'not a pid']) {
      const file = join(dir, `${String(stale).replace(/ /g, '-')}.pid`)
      writeFileSync(file, `${stale}\n`)
      const lock = await takePidLock(file)
      expect('release' in lock).toBe(true)
      expect(readFileSync(file, 'utf8')).toBe(`${process.pid}\n`)
    }
  })

  it('throws what is not "the file exists" as it is', async () => {
    await expect(takePidLock(join(tmpDir('hsmlab-lock-'), 'no-such-dir', 'x.pid'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
