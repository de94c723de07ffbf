/**
 * A store whose bytes were changed refuses to load and says which file and why; a record torn
 * by a crash is dropped instead. Each test writes a few records, damages the files the way a
 * crash or an intruder would, and reopens.
 */
import { appendFileSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateSecretKey } from '@hsmlab/crypto'
import { tmpDir } from '@hsmlab/testing'
import { describe, expect, it, onTestFinished } from 'vitest'
import { openStore } from '../src/index.js'
import type { Store, StoreOptions } from '../src/index.js'
import { walFrames } from './wal-frames.js'

interface Fixture {
  options: StoreOptions
  wal: string
  snap: string
  manifest: string
  /** The manifest's bytes as each record left it (index 0: before the first). */
  manifests: Buffer[]
}

/** A closed store with three records (batches of two ids each), and optionally a snapshot first. */
async function writeStore (extra: Partial<StoreOptions> = {}): Promise<Fixture> {
  const options: StoreOptions = { dir: tmpDir('hsmlab-store-'), name: 'keys', key: generateSecretKey(), ...extra }
  const manifest = join(options.dir, 'keys.manifest')
  const store = await openStore(options)
  const manifests = [readFileSync(manifest)]
  for (let b = 1; b <= 3; b++) {
    await store.apply([{ op: 'put', id: `b${b}-0`, value: b }, { op: 'put', id: `b${b}-1`, value: b }])
    manifests.push(readFileSync(manifest))
  }
  await store.close()
  return { options, wal: join(options.dir, 'keys.wal'), snap: join(options.dir, 'keys.snap'), manifest, manifests }
}

/**
 * Puts back the manifest as record `seq` left it: a crash that damaged record `seq + 1` came
 * before that record's manifest write, since the manifest is written only once the record is
 * durable.
 */
function crashedBefore (fixture: Fixture, seq: number): void {
  writeFileSync(fixture.manifest, fixture.manifests[seq]!)
}

async function open (options: StoreOptions): Promise<Store<unknown>> {
  const store = await openStore<unknown>(options)
  onTestFinished(async () => { await store.close() })
  return store
}

function ids (store: Store<unknown>): string[] {
  return [...store.entries()].map(([id]) => id)
}

function flipByte (path: string, at: number): void {
  const bytes = readFileSync(path)
  bytes[at] = (bytes[at] ?? 0) ^ 0x01
  writeFileSync(path, bytes)
}

function tampered (path: string, why: string | RegExp): object {
  return { code: 'STORE_ERR_TAMPERED', name: 'StoreError', message: expect.stringMatching(typeof why === 'string' ? new RegExp(`^${escape(path)}: .*${escape(why)}`) : why) }
}

function escape (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

describe('tampering', () => {
  it('refuses a WAL with one byte flipped in the middle, naming the file', async () => {
    const { options, wal } = await writeStore()
    flipByte(wal, Math.floor(readFileSync(wal).length / 2))
    await expect(openStore(options)).rejects.toMatchObject(tampered(wal, ''))
  })

  it('says which record failed authentication and at which byte', async () => {
    const { options, wal } = await writeStore()
    const second = walFrames(wal)[1]!
    flipByte(wal, second.body + 30)
    await expect(openStore(options)).rejects.toMatchObject(tampered(wal, `record 2 at byte ${second.start} failed authentication: changed, or sealed under another key`))
  })

  it('takes a flipped bit in a length prefix for tampering, not a torn tail, even in the last record', async () => {
    const { options, wal } = await writeStore()
    const last = walFrames(wal)[2]!
    // Without the complement a longer length would make the last record look cut short.
    flipByte(wal, last.start)
    await expect(openStore(options)).rejects.toMatchObject(tampered(wal, `record 3 at byte ${last.start} has a damaged length prefix`))
  })

  it('refuses a WAL with a record removed, duplicated or moved', async () => {
    const { options, wal } = await writeStore()
    const bytes = readFileSync(wal)
    const [r1, r2, r3] = walFrames(wal).map(f => bytes.subarray(f.start, f.end)) as [Buffer, Buffer, Buffer]
    const cases: Array<[Buffer[], string]> = [
      [[r1, r3], 'record 2 at byte'],
      [[r1, r2, r2, r3], 'has seq 2 after seq 2'],
      [[r1, r3, r2], 'has seq 3 after seq 1'],
      [[r2, r3], 'record 1 at byte 0 has seq 2 but there is no snapshot']
    ]
    for (const [records, why] of cases) {
      writeFileSync(wal, Buffer.concat(records))
      await expect(openStore(options)).rejects.toMatchObject(tampered(wal, why))
    }
  })

  it('takes random bytes after the last record for tampering', async () => {
    const { options, wal } = await writeStore()
    appendFileSync(wal, Buffer.from('this is not a record, just some bytes someone appended'))
    await expect(openStore(options)).rejects.toMatchObject(tampered(wal, 'record 4 at byte'))
  })

  it('refuses a snapshot with one byte flipped, naming the snapshot file', async () => {
    const { options, snap } = await writeStore({ snapshotAfterRecords: 2 })
    flipByte(snap, Math.floor(readFileSync(snap).length / 2))
    await expect(openStore(options)).rejects.toMatchObject(tampered(snap, 'snapshot of'))
    await expect(openStore(options)).rejects.toMatchObject({ message: expect.stringContaining('failed authentication: changed, or sealed under another key') })
  })

  it('refuses a WAL whose snapshot was removed, naming the snapshot', async () => {
    const { options, snap } = await writeStore({ snapshotAfterRecords: 2 })
    rmSync(snap)
    await expect(openStore(options)).rejects.toMatchObject(tampered(snap, 'is missing, but'))
    await expect(openStore(options)).rejects.toMatchObject({ message: expect.stringContaining('says a snapshot up to seq 2 was written: the file was deleted') })
  })

  it('refuses the wrong storage key, for the manifest, the WAL and the snapshot', async () => {
    const { options, wal, manifest } = await writeStore()
    const why = 'failed authentication: changed, or sealed under another key'
    const otherKey = generateSecretKey()
    // The manifest is read first.
    await expect(openStore({ ...options, key: otherKey })).rejects.toMatchObject(tampered(manifest, `manifest ${why}`))
    // With a manifest sealed under the other key, the WAL is the first file that fails.
    const otherDir = tmpDir('hsmlab-store-')
    await (await openStore({ ...options, dir: otherDir, key: otherKey })).close()
    writeFileSync(manifest, readFileSync(join(otherDir, 'keys.manifest')))
    await expect(openStore({ ...options, key: otherKey })).rejects.toMatchObject(tampered(wal, `record 1 at byte 0 ${why}`))
    const withSnap = await writeStore({ snapshotAfterRecords: 2 })
    await expect(openStore({ ...withSnap.options, key: otherKey })).rejects.toMatchObject(tampered(withSnap.manifest, why))
  })
})

describe('torn tail', () => {
  it('drops a last record cut in half, keeps the ones before, and keeps working', async () => {
    const fixture = await writeStore()
    const { options, wal } = fixture
    const last = walFrames(wal)[2]!
    truncateSync(wal, last.start + Math.floor((last.end - last.start) / 2))
    crashedBefore(fixture, 2)
    const store = await open(options)
    expect(ids(store)).toEqual(['b1-0', 'b1-1', 'b2-0', 'b2-1'])
    // The torn bytes are gone from the file, so new records follow the good ones directly.
    expect(readFileSync(wal).length).toBe(last.start)
    await store.apply([{ op: 'put', id: 'b4-0', value: 4 }])
    await store.close()
    const again = await open(options)
    expect(ids(again)).toEqual(['b1-0', 'b1-1', 'b2-0', 'b2-1', 'b4-0'])
  })

  it('drops a partial record appended after the last one', async () => {
    const { options, wal } = await writeStore()
    const bytes = readFileSync(wal)
    const first = walFrames(wal)[0]!
    for (const cut of [3, 8, 20, first.end - 1]) {
      appendFileSync(wal, bytes.subarray(0, cut))
      const store = await openStore(options)
      expect(store.size).toBe(6)
      await store.close()
      expect(readFileSync(wal).length).toBe(bytes.length)
    }
  })

  it('drops zero bytes at the end, as a power cut leaves them', async () => {
    const fixture = await writeStore()
    const { options, wal } = fixture
    const bytes = readFileSync(wal)
    const last = walFrames(wal)[2]!
    // The file grew but nothing landed: all zeros from a record's start.
    appendFileSync(wal, Buffer.alloc(4096))
    expect((await open(options)).size).toBe(6)
    // The last record's own end never landed: its length is right, its tail is zeros.
    const damaged = Buffer.from(bytes)
    damaged.fill(0, last.end - 100, last.end)
    writeFileSync(wal, damaged)
    crashedBefore(fixture, 2)
    const store = await openStore(options)
    expect(ids(store)).toEqual(['b1-0', 'b1-1', 'b2-0', 'b2-1'])
    await store.close()
  })

  it('does not take a changed last record for a torn one, but says how to recover if it was', async () => {
    const { options, wal } = await writeStore()
    const last = walFrames(wal)[2]!
    flipByte(wal, last.end - 1)
    const why = `record 3 at byte ${last.start} failed authentication: changed, or sealed under another key; ` +
      `it is the last record: if the machine lost power while writing it, truncating the file to ${last.start} bytes recovers the store`
    await expect(openStore(options)).rejects.toMatchObject(tampered(wal, why))
  })
})
