/**
 * `writeFileAtomic`: the new content with the asked permissions and no temporary file left; and a
 * write whose `renameAfter` rejects leaves the old content and no temporary file, with that error.
 */
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { writeFileAtomic } from '../src/index.js'

describe('writeFileAtomic', () => {
  it('replaces the content, with the mode asked for a new file, leaving no temporary file', async () => {
    const dir = tmpDir('hsmlab-atomic-')
    const file = join(dir, 'state.json')
    await writeFileAtomic(file, '{"v":1}', { mode: 0o644 })
    expect(statSync(file).mode & 0o777).toBe(0o644)
    await writeFileAtomic(file, new Uint8Array([123, 125]))
    expect(readFileSync(file, 'utf8')).toBe('{}')
    expect(readdirSync(dir)).toEqual(['state.json'])
  })

  it('keeps the old content when the write it waits for fails, and passes that error on', async () => {
    const dir = tmpDir('hsmlab-atomic-')
    const file = join(dir, 'state.json')
    writeFileSync(file, 'old')
    // Rejected before the new content is even written: that must not be an unhandled rejection.
    const failed = new Error('the backup bytes could not be written')
    await expect(writeFileAtomic(file, 'new', { renameAfter: Promise.reject(failed) })).rejects.toBe(failed)
    expect(readFileSync(file, 'utf8')).toBe('old')
    expect(readdirSync(dir)).toEqual(['state.json'])
  })
})
