/**
 * A store whose files were put back from an earlier time, cut short (at a record boundary too)
 * or deleted refuses to load and names the file (issue 9 §2); the manifest that makes this
 * possible never refuses what a crash leaves. Each test writes a store, keeps copies of its
 * files at an earlier moment, damages the files as an intruder or a careless restore would,
 * and reopens; the crash points around the manifest write are rebuilt from copies too.
 */
import { copyFileSync, existsSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateSecretKey } from '@hsmlab/crypto'
import { tmpDir } from '@hsmlab/testing'
import { describe, expect, it, onTestFinished } from 'vitest'
import { openStore } from '../src/index.js'
import type { Store, StoreOptions } from '../src/index.js'
import { openDiskStore } from '../src/disk-store.js'
import { sealManifest } from '../src/manifest.js'
import { failingFileSystem } from './failing-file-system.js'
import { walFrames } from './wal-frames.js'

type FileKind = 'wal' | 'snap' | 'manifest'
const KINDS: readonly FileKind[] = ['wal', 'snap', 'manifest']

function fresh (extra: Partial<StoreOptions> = {}): StoreOptions {
  return { dir: tmpDir('hsmlab-store-'), name: 'keys', key: generateSecretKey(), ...extra }
}

function pathOf (options: StoreOptions, kind: FileKind): string {
  return join(options.dir, `keys.${kind}`)
}

async function open (options: StoreOptions): Promise<Store<unknown>> {
  const store = await openStore<unknown>(options)
  onTestFinished(async () => { await store.close() })
  return store
}

/** Applies records `from..to`, one put of `k<n>` each, on a store opened and closed around them. */
async function putRecords (options: StoreOptions, from: number, to: number): Promise<void> {
  const store = await openStore(options)
  for (let n = from; n <= to; n++) await store.apply([{ op: 'put', id: `k${n}`, value: n }])
  await store.close()
}

/** Copies of a store's files as they are now (absent files are absent from the copy). */
function copyFiles (options: StoreOptions): Map<FileKind, Buffer> {
  const copies = new Map<FileKind, Buffer>()
  for (const kind of KINDS) if (existsSync(pathOf(options, kind))) copies.set(kind, readFileSync(pathOf(options, kind)))
  return copies
}

function refused (path: string, why: string): object {
  return { code: 'STORE_ERR_TAMPERED', message: expect.stringMatching(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*${why}`)) }
}

describe('a file put back from an earlier time', () => {
  it('refuses an earlier keys.wal in which a deleted key still lives and a later one is missing', async () => {
    const options = fresh()
    const store = await openStore(options)
    await store.apply([{ op: 'put', id: 'deleted-later', value: 1 }])
    const earlier = readFileSync(pathOf(options, 'wal'))
    await store.apply([{ op: 'delete', id: 'deleted-later' }])
    await store.apply([{ op: 'put', id: 'acknowledged', value: 2 }])
    await store.close()
    writeFileSync(pathOf(options, 'wal'), earlier)
    await expect(openStore(options)).rejects.toMatchObject(refused(pathOf(options, 'wal'), 'ends at seq 1, but .*keys.manifest vouches for records up to seq 3: acknowledged records are missing'))
  })

  // Files at seq 4 (snapshot at 3, record 4 in the WAL), then at seq 8 (snapshot at 6, records 7
  // and 8): each file alone is put back as it was at seq 4.
  const why: Record<FileKind, string> = {
    wal: 'ends at seq 6, but .* vouches for records up to seq 8',
    snap: 'covers up to seq 3, but .* says a snapshot up to seq 6 was written: it was replaced by an earlier copy',
    manifest: 'vouches for seq 4, but .*keys.snap covers up to seq 6: the manifest was replaced by an earlier copy'
  }
  for (const kind of KINDS) {
    it(`refuses an earlier keys.${kind}, naming it`, async () => {
      const options = fresh({ snapshotAfterRecords: 3 })
      await putRecords(options, 1, 4)
      const earlier = copyFiles(options)
      await putRecords(options, 5, 8)
      writeFileSync(pathOf(options, kind), earlier.get(kind)!)
      await expect(openStore(options)).rejects.toMatchObject(refused(pathOf(options, kind), why[kind]))
    })
  }

  it('refuses an earlier keys.manifest beside a WAL that went on, naming the manifest', async () => {
    const options = fresh()
    await putRecords(options, 1, 2)
    const earlier = copyFiles(options)
    await putRecords(options, 3, 5)
    writeFileSync(pathOf(options, 'manifest'), earlier.get('manifest')!)
    await expect(openStore(options)).rejects.toMatchObject(refused(pathOf(options, 'manifest'), 'vouches for seq 2, but .*keys.wal holds records up to seq 5'))
  })

  it('refuses another store\'s manifest under the same key', async () => {
    const options = fresh()
    await putRecords(options, 1, 2)
    const other = { ...options, name: 'users' }
    await putRecords(other, 1, 2)
    copyFileSync(join(options.dir, 'users.manifest'), pathOf(options, 'manifest'))
    await expect(openStore(options)).rejects.toMatchObject(refused(pathOf(options, 'manifest'), "is the manifest of store 'users', not of 'keys'"))
  })
})

describe('a WAL cut short', () => {
  it('refuses keys.wal cut at every record boundary and in the middle of every record, and leaves it as it was', async () => {
    const options = fresh()
    await putRecords(options, 1, 4)
    const wal = pathOf(options, 'wal')
    const whole = readFileSync(wal)
    const frames = walFrames(wal)
    const cuts = [0, ...frames.map(f => f.start + Math.floor((f.end - f.start) / 2)), ...frames.slice(1).map(f => f.start)]
    for (const cut of cuts) {
      writeFileSync(wal, whole.subarray(0, cut))
      await expect(openStore(options), `cut at byte ${cut}`).rejects.toMatchObject(refused(wal, 'acknowledged records are missing'))
      // Recovery did not cut the torn tail away: the evidence is kept for whoever restores it.
      expect(readFileSync(wal).length).toBe(cut)
    }
    writeFileSync(wal, whole)
    expect((await open(options)).size).toBe(4)
  })
})

describe('a file deleted', () => {
  const why: Record<FileKind, string> = {
    wal: 'is missing, but .* vouches for records up to seq 5: the file was deleted',
    snap: 'is missing, but .* says a snapshot up to seq 3 was written: the file was deleted',
    manifest: 'is missing, but .*keys.snap and .*keys.wal hold the store: the manifest was deleted'
  }
  for (const kind of KINDS) {
    it(`refuses a store whose keys.${kind} was deleted, naming it`, async () => {
      const options = fresh({ snapshotAfterRecords: 3 })
      await putRecords(options, 1, 5)
      rmSync(pathOf(options, kind))
      await expect(openStore(options)).rejects.toMatchObject(refused(pathOf(options, kind), why[kind]))
    })
  }

  it('refuses a WAL emptied, or deleted, right after a snapshot', async () => {
    const options = fresh({ snapshotAfterRecords: 3 })
    await putRecords(options, 1, 3)
    await putRecords(options, 4, 4)
    truncateSync(pathOf(options, 'wal'), 0)
    await expect(openStore(options)).rejects.toMatchObject(refused(pathOf(options, 'wal'), 'ends at seq 3, but .* vouches for records up to seq 4'))
    rmSync(pathOf(options, 'wal'))
    await expect(openStore(options)).rejects.toMatchObject(refused(pathOf(options, 'wal'), 'is missing'))
  })

  it('refuses a store whose files were all deleted when it must exist (create: false)', async () => {
    const options = fresh({ snapshotAfterRecords: 3 })
    await putRecords(options, 1, 5)
    for (const kind of KINDS) rmSync(pathOf(options, kind))
    await expect(openStore({ ...options, create: false })).rejects.toMatchObject(refused(pathOf(options, 'manifest'), 'is missing, and so is .*keys.wal and .*keys.snap, but the store must exist'))
    // Nothing was created by the refusal.
    for (const kind of KINDS) expect(existsSync(pathOf(options, kind))).toBe(false)
    // A store that may be created starts empty, as it always did.
    expect((await open(options)).size).toBe(0)
  })

  it('opens a store that exists with create: false', async () => {
    const options = fresh()
    await putRecords(options, 1, 2)
    expect((await open({ ...options, create: false })).size).toBe(2)
  })
})

describe('crash points around the manifest', () => {
  it('keeps a record whose manifest write never happened, and vouches for it from then on', async () => {
    const options = fresh()
    await putRecords(options, 1, 2)
    const manifestAt2 = readFileSync(pathOf(options, 'manifest'))
    await putRecords(options, 3, 3)
    // A crash between record 3's WAL write and its manifest write.
    writeFileSync(pathOf(options, 'manifest'), manifestAt2)
    const store = await openStore(options)
    expect(store.get('k3')).toBe(3)
    await store.close()
    // The reopen wrote the manifest: record 3 may no longer go missing.
    const wal = pathOf(options, 'wal')
    truncateSync(wal, walFrames(wal)[2]!.start)
    await expect(openStore(options)).rejects.toMatchObject(refused(wal, 'ends at seq 2, but .* vouches for records up to seq 3'))
  })

  it('loads a snapshot renamed into place before the manifest said so', async () => {
    const fs = failingFileSystem()
    const options = fresh({ snapshotAfterRecords: 3 })
    await putRecords(options, 1, 2)
    const store = await openDiskStore<unknown>(options, fs)
    // The snapshot after record 3 stops before the WAL is emptied ...
    fs.failOn('truncate')
    await store.apply([{ op: 'put', id: 'k3', value: 3 }])
    await expect(store.apply([{ op: 'put', id: 'k4', value: 4 }])).rejects.toMatchObject({ code: 'STORE_ERR_IO' })
    await store.close()
    // ... and a crash came before the manifest write that says so: it still says seq 3, no snapshot.
    writeFileSync(pathOf(options, 'manifest'), sealManifest(options.key, 'keys', { seq: 3, snapSeq: 0 }))
    const again = await openStore(options)
    expect([...again.values()]).toEqual([1, 2, 3])
    await again.close()
    // The reopen brought the manifest up to the snapshot: deleting it is refused now.
    rmSync(pathOf(options, 'snap'))
    await expect(openStore(options)).rejects.toMatchObject(refused(pathOf(options, 'snap'), 'says a snapshot up to seq 3 was written'))
  })
})
