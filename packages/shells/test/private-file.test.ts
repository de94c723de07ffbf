/**
 * Issue 9 §4: the shells' output files are their owner's only. `writePrivateFile` creates a file
 * 0600 whatever the umask allows, replaces an existing world-readable file with a 0600 one (the
 * bytes never sit in the old, wider file), and leaves no temporary file behind, also when the
 * write fails.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { writePrivateFile } from '../src/private-file.js'

let dir: string
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'shells-private-')) })
afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

const modeOf = (file: string): string => (statSync(file).mode & 0o777).toString(8)

describe('writePrivateFile', () => {
  it('creates a new file 0600', async () => {
    await writePrivateFile(join(dir, 'key.pem'), 'secret')
    expect(readFileSync(join(dir, 'key.pem'), 'utf8')).toBe('secret')
    expect(modeOf(join(dir, 'key.pem'))).toBe('600')
    expect(readdirSync(dir)).toEqual(['key.pem'])
  })

  it('replaces an existing 0644 file with a 0600 one', async () => {
    writeFileSync(join(dir, 'key.pem'), 'old')
    chmodSync(join(dir, 'key.pem'), 0o644)
    const before = statSync(join(dir, 'key.pem')).ino
    await writePrivateFile(join(dir, 'key.pem'), new Uint8Array([1, 2, 3]))
    expect([...readFileSync(join(dir, 'key.pem'))]).toEqual([1, 2, 3])
    expect(modeOf(join(dir, 'key.pem'))).toBe('600')
    // A new file, not the old one changed: whoever had the old one open never reads the new bytes.
    expect(statSync(join(dir, 'key.pem')).ino).not.toBe(before)
    expect(readdirSync(dir)).toEqual(['key.pem'])
  })

  it('fails on a path it cannot write and leaves nothing behind', async () => {
    await expect(writePrivateFile(join(dir, 'missing', 'key.pem'), 'secret')).rejects.toMatchObject({ code: 'ENOENT' })
    writeFileSync(join(dir, 'file'), '')
    await expect(writePrivateFile(join(dir, 'file', 'key.pem'), 'secret')).rejects.toMatchObject({ code: 'ENOTDIR' })
    expect(readdirSync(dir)).toEqual(['file'])
  })
})
