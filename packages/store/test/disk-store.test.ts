/**
 * The on-disk store: the compliance suite, then what only a disk store has — reopening,
 * snapshots, group commit, the queue bound, and failing writes at each step of a snapshot
 * (which is also how the crash points between those steps are reached).
 */
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateSecretKey } from '@hsmlab/crypto'
import { tmpDir } from '@hsmlab/testing'
import { describe, expect, it, onTestFinished } from 'vitest'
import { openStore } from '../src/index.js'
import type { Store, StoreOptions } from '../src/index.js'
import { openDiskStore } from '../src/disk-store.js'
import { failingFileSystem } from './failing-file-system.js'
import { storeComplianceTests } from './store-compliance.js'
import { walFrames } from './wal-frames.js'

storeComplianceTests('openStore', async () => await openStore({ dir: tmpDir('hsmlab-store-'), name: 'test', key: generateSecretKey() }))

/** Options for a fresh store in a fresh directory. */
function freshOptions (extra: Partial<StoreOptions> = {}): StoreOptions {
  return { dir: tmpDir('hsmlab-store-'), name: 'users', key: generateSecretKey(), ...extra }
}

/** Opens a store that is closed when the test ends. */
async function open (options: StoreOptions): Promise<Store<unknown>> {
  const store = await openStore<unknown>(options)
  onTestFinished(async () => { await store.close() })
  return store
}

describe('openStore on disk', () => {
  it('keeps everything across close and reopen', async () => {
    const options = freshOptions()
    const store = await open(options)
    await store.apply([{ op: 'put', id: 'a', value: { n: 1, bytes: new Uint8Array([1]) } }, { op: 'put', id: 'b', value: 'B' }])
    await store.apply([{ op: 'delete', id: 'b' }, { op: 'put', id: 'c', value: 2n }])
    await store.close()
    const again = await open(options)
    expect([...again.entries()]).toEqual([['a', { n: 1, bytes: new Uint8Array([1]) }], ['c', 2n]])
    expect(Object.isFrozen(again.get('a'))).toBe(true)
    expect(readdirSync(options.dir).sort()).toEqual(['users.manifest', 'users.wal'])
  })

  it('keeps everything across a snapshot followed by more WAL records', async () => {
    const options = freshOptions({ snapshotAfterRecords: 4 })
    const store = await open(options)
    for (let i = 0; i < 10; i++) await store.apply([{ op: 'put', id: `k${i}`, value: i }, { op: 'delete', id: `k${i - 3}` }])
    await store.close()
    // 10 records: snapshots after records 4 and 8, records 9 and 10 in the WAL.
    expect(existsSync(join(options.dir, 'users.snap'))).toBe(true)
    expect(walFrames(join(options.dir, 'users.wal'))).toHaveLength(2)
    const again = await open(options)
    expect([...again.entries()]).toEqual([['k7', 7], ['k8', 8], ['k9', 9]])
    // And the sequence continues where it left off.
    for (let i = 10; i < 15; i++) await again.apply([{ op: 'put', id: `k${i}`, value: i }])
    await again.close()
    const third = await open(options)
    expect(third.size).toBe(8)
    expect(third.get('k14')).toBe(14)
  })

  it('writes concurrent applies as few group commits, one write at a time', async () => {
    const fs = failingFileSystem()
    const options = freshOptions()
    const store = await openDiskStore<unknown>(options, fs)
    onTestFinished(async () => { await store.close() })
    // Creating the store wrote its first manifest.
    const atOpen = fs.writes
    await Promise.all(Array.from({ length: 200 }, async (_, i) => { await store.apply([{ op: 'put', id: `k${i}`, value: i }]) }))
    expect(store.size).toBe(200)
    // All 200 were made in one turn of the event loop, so they share one write (and one write
    // of the manifest after it).
    expect(fs.writes - atOpen).toBe(2)
    // Writers that come back for more keep the disk busy with ever larger groups.
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; i < 20; i++) await store.apply([{ op: 'put', id: `w${w}-${i}`, value: i }])
    }
    await Promise.all(Array.from({ length: 16 }, async (_, w) => { await writer(w) }))
    expect(store.size).toBe(200 + 16 * 20)
    expect(fs.writes - atOpen).toBeLessThan(2 * (1 + 16 * 20 / 2))
    expect(fs.writesInFlightMax).toBe(1)
    await store.close()
    expect((await open(options)).size).toBe(520)
  })

  it('bounds the bytes waiting for the disk: past queuedBytesMax apply rejects with STORE_ERR_BUSY', async () => {
    const options = freshOptions({ queuedBytesMax: 2000 })
    const store = await open(options)
    const value = 'x'.repeat(100)
    const results = await Promise.allSettled(Array.from({ length: 50 }, async (_, i) => { await store.apply([{ op: 'put', id: `k${i}`, value }]) }))
    const accepted = results.flatMap((r, i) => r.status === 'fulfilled' ? [`k${i}`] : [])
    const rejected = results.flatMap(r => r.status === 'rejected' ? [r.reason] : [])
    expect(accepted.length).toBeGreaterThan(5)
    expect(rejected.length).toBeGreaterThan(5)
    for (const err of rejected) expect(err).toMatchObject({ code: 'STORE_ERR_BUSY' })
    // A batch larger than the whole bound can never be written.
    await expect(store.apply([{ op: 'put', id: 'big', value: 'y'.repeat(5000) }])).rejects.toMatchObject({ code: 'STORE_ERR_INVALID_ARGUMENT' })
    // Once the queue drains there is room again.
    await store.apply([{ op: 'put', id: 'later', value }])
    await store.close()
    const again = await open(options)
    expect([...again.values()]).toHaveLength(accepted.length + 1)
    for (const id of accepted) expect(again.has(id)).toBe(true)
  })

  it('rejects bad options with STORE_ERR_INVALID_ARGUMENT', async () => {
    const ok = freshOptions()
    for (const bad of [
      { ...ok, key: new Uint8Array(16) },
      { ...ok, name: '../escape' },
      { ...ok, name: '' },
      { ...ok, snapshotAfterRecords: 0 },
      { ...ok, queuedBytesMax: -1 }
    ]) {
      await expect(openStore(bad)).rejects.toMatchObject({ code: 'STORE_ERR_INVALID_ARGUMENT' })
    }
  })

  it('reports a directory it cannot use as STORE_ERR_IO naming it', async () => {
    const dir = join(tmpDir('hsmlab-store-'), 'missing')
    await expect(openStore({ ...freshOptions(), dir })).rejects.toMatchObject({ code: 'STORE_ERR_IO', message: expect.stringContaining(dir) })
  })

  it('works without syncWrites', async () => {
    const options = freshOptions({ syncWrites: false, snapshotAfterRecords: 2 })
    const store = await open(options)
    for (let i = 0; i < 5; i++) await store.apply([{ op: 'put', id: `k${i}`, value: i }])
    await store.close()
    expect((await open(options)).size).toBe(5)
  })
})

describe('openStore when a write fails', () => {
  async function openFailing (extra: Partial<StoreOptions> = {}): Promise<{ store: Store<unknown>, fs: ReturnType<typeof failingFileSystem>, options: StoreOptions }> {
    const fs = failingFileSystem()
    const options = freshOptions(extra)
    const store = await openDiskStore<unknown>(options, fs)
    onTestFinished(async () => { await store.close() })
    return { store, fs, options }
  }

  it('rejects the batch and every later one with STORE_ERR_IO, keeps serving reads, and recovers on reopen', async () => {
    const { store, fs, options } = await openFailing()
    await store.apply([{ op: 'put', id: 'a', value: 1 }])
    fs.failOn('write')
    const failed = await Promise.allSettled([store.apply([{ op: 'put', id: 'b', value: 2 }]), store.apply([{ op: 'put', id: 'c', value: 3 }])])
    for (const r of failed) expect(r).toMatchObject({ status: 'rejected', reason: { code: 'STORE_ERR_IO' } })
    fs.failOn(undefined)
    // The file's state is unknown after a failed write, so the store stays stopped.
    await expect(store.apply([{ op: 'put', id: 'd', value: 4 }])).rejects.toMatchObject({ code: 'STORE_ERR_IO', message: expect.stringContaining('reopen') })
    expect(store.get('a')).toBe(1)
    expect(store.has('b')).toBe(false)
    await store.close()
    const again = await open(options)
    expect(again.get('a')).toBe(1)
    await again.apply([{ op: 'put', id: 'e', value: 5 }])
    expect(again.get('e')).toBe(5)
  })

  for (const code of ['ENOSPC', 'EDQUOT']) {
    it(`rejects only the batches that found the disk full (${code}) with STORE_ERR_NO_SPACE, keeps nothing of them, and takes writes again`, async () => {
      const { store, fs, options } = await openFailing()
      const wal = join(options.dir, 'users.wal')
      await store.apply([{ op: 'put', id: 'a', value: 1 }])
      const durableBytes = statSync(wal).size
      fs.failOn('write', code)
      const failed = await Promise.allSettled([store.apply([{ op: 'put', id: 'b', value: 2 }]), store.apply([{ op: 'delete', id: 'a' }])])
      for (const r of failed) {
        expect(r).toMatchObject({ status: 'rejected', reason: { code: 'STORE_ERR_NO_SPACE', message: expect.stringContaining('free space and retry') } })
      }
      // The half record the failing write left is cut off again; memory never saw the batches.
      expect(statSync(wal).size).toBe(durableBytes)
      expect([...store.entries()]).toEqual([['a', 1]])
      // Still full: the next write fails the same way, and the store does not stop.
      await expect(store.apply([{ op: 'put', id: 'c', value: 3 }])).rejects.toMatchObject({ code: 'STORE_ERR_NO_SPACE' })
      fs.failOn(undefined)
      await store.apply([{ op: 'put', id: 'd', value: 4 }])
      expect([...store.entries()]).toEqual([['a', 1], ['d', 4]])
      await store.close()
      const again = await open(options)
      expect([...again.entries()]).toEqual([['a', 1], ['d', 4]])
      await again.apply([{ op: 'put', id: 'e', value: 5 }])
      expect(walFrames(wal)).toHaveLength(3)
    })
  }

  for (const step of ['writeFile', 'rename', 'syncDirectory'] as const) {
    it(`goes on when a snapshot does not fit (ENOSPC at ${step}), and writes one once there is space`, async () => {
      const { store, fs, options } = await openFailing({ snapshotAfterRecords: 2 })
      const snap = join(options.dir, 'users.snap')
      await store.apply([{ op: 'put', id: 'k0', value: 0 }])
      fs.failOn(step, 'ENOSPC')
      // Both records are durable and acknowledged; the snapshots after them do not fit.
      await store.apply([{ op: 'put', id: 'k1', value: 1 }])
      await store.apply([{ op: 'put', id: 'k2', value: 2 }])
      await store.close()
      // Nothing is left taking space, and the WAL still holds every record (a snapshot renamed
      // into place before its directory sync failed is there too, covering no more than it).
      expect(existsSync(`${snap}.tmp`)).toBe(false)
      expect(existsSync(snap)).toBe(step === 'syncDirectory')
      expect(walFrames(join(options.dir, 'users.wal'))).toHaveLength(3)
      const again = await openDiskStore<unknown>(options, fs)
      onTestFinished(async () => { await again.close() })
      await again.apply([{ op: 'put', id: 'k3', value: 3 }])
      fs.failOn(undefined)
      await again.apply([{ op: 'put', id: 'k4', value: 4 }])
      await again.close()
      // A snapshot was written once there was space (whether right after k3 or after k4 depends
      // on when the writer got to it), so the WAL holds fewer records than snapshotAfterRecords.
      expect(statSync(snap).size).toBeGreaterThan(0)
      expect(walFrames(join(options.dir, 'users.wal')).length).toBeLessThan(2)
      expect([...(await open(options)).values()]).toEqual([0, 1, 2, 3, 4])
    })
  }

  // Each step of a snapshot made to fail stands for a crash right before that step.
  for (const step of ['writeFile', 'rename', 'syncDirectory', 'truncate'] as const) {
    it(`loads every acknowledged change when a snapshot stops at ${step}`, async () => {
      const { store, fs, options } = await openFailing({ snapshotAfterRecords: 3 })
      await store.apply([{ op: 'put', id: 'k0', value: 0 }])
      await store.apply([{ op: 'put', id: 'k1', value: 1 }])
      fs.failOn(step)
      // The third record is durable and acknowledged; the snapshot after it fails.
      await store.apply([{ op: 'put', id: 'k2', value: 2 }])
      await expect(store.apply([{ op: 'put', id: 'k3', value: 3 }])).rejects.toMatchObject({ code: 'STORE_ERR_IO', message: expect.stringContaining('users.snap') })
      await store.close()
      if (step === 'rename') writeFileSync(join(options.dir, 'users.snap.tmp'), 'a half-written snapshot')
      const again = await open(options)
      expect([...again.entries()].map(e => e[0])).toEqual(['k0', 'k1', 'k2'])
      expect(existsSync(join(options.dir, 'users.snap.tmp'))).toBe(false)
      // Writing goes on without a gap in the sequence, across another reopen.
      await again.apply([{ op: 'put', id: 'k4', value: 4 }])
      await again.close()
      expect([...(await open(options)).values()]).toEqual([0, 1, 2, 4])
      if (step === 'truncate') {
        // The snapshot was renamed into place, but the WAL still held its records; the reopen
        // emptied it before appending.
        expect(statSync(join(options.dir, 'users.snap')).size).toBeGreaterThan(0)
        expect(walFrames(join(options.dir, 'users.wal'))).toHaveLength(1)
      }
    })
  }
})
