/**
 * Restoring backups with real processes, the way the control plane clones a cluster (reference
 * G.1): a backup of an HSM of cluster A, kept as opaque bytes in a file, restored by
 * `hsmlab-hsm --provision` into an HSM of a new cluster B → the same users (passwords too),
 * keys with their handles, deleted keys still deleted, and the same lineage, served with B's
 * certificate. A backup with one changed byte, or from another installation, is refused: exit 2,
 * a message naming the backup file, and no data directory.
 */
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Attribute } from '@hsmlab/protocol'
import { HSM_EXIT_CODES, readBackupHeader } from '../src/index.js'
import {
  connectPlane, exportBackup, loginPlane, newInstallation, newPlaneCluster, planHsm, runPlanned, spawnPlanned, storeBackup
} from './backup-helpers.js'
import type { Installation, RunningPlaneHsm } from './backup-helpers.js'
import { expectCode } from './helpers.js'

const DATA = new TextEncoder().encode('signed in cluster A, verified in its clone')

/** Cluster A with an activated CO, CUs alice and bob, alice's keys (one deleted), and a backup of it. */
async function sourceCluster (installation: Installation): Promise<{
  hsm: RunningPlaneHsm
  lineage: string
  aes: number
  pair: { publicHandle: number, privateHandle: number }
  deleted: number
  signature: Uint8Array
  backupFile: string
  backup: Uint8Array
}> {
  const hsm = await runPlanned(await planHsm(installation, newPlaneCluster(), { slot: 0 }))
  const co = await loginPlane(hsm, 'PRECO', 'admin', 'password')
  await co.call('changePassword', { userType: 'PRECO', userName: 'admin', password: 'officer1pw' })
  await co.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' })
  await co.call('createUser', { userType: 'CU', userName: 'bob', password: 'bobpw12' })
  const alice = await loginPlane(hsm, 'CU', 'alice', 'alicepw1')
  const aes = (await alice.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: 'aes', id: 'k1', shareWith: [4] })).handle
  const pair = await alice.call('generateKeyPair', { algorithm: 'EC', curveId: 2, label: 'ec' })
  const deleted = (await alice.call('generateSymmetricKey', { keyType: 31, sizeBytes: 16, label: 'deleted' })).handle
  await alice.call('deleteKey', { handle: deleted })
  const { signature } = await alice.call('sign', { handle: pair.privateHandle, mechanism: 17, data: DATA })
  const lineage = (await connectPlane(hsm)).call('getHsmInfo', {}).then(info => info.lineage)
  const { backup } = await exportBackup(hsm)
  const backupFile = await storeBackup(installation, backup)
  return { hsm, lineage: await lineage, aes, pair, deleted, signature, backupFile, backup }
}

describe('restoring a backup into a new cluster (a clone)', () => {
  it('brings the same users, keys, handles and lineage, under the clone\'s cluster id and certificate', async () => {
    const installation = await newInstallation()
    const source = await sourceCluster(installation)
    const cloneCluster = newPlaneCluster()
    expect(cloneCluster.clusterId).not.toBe(source.hsm.cluster.clusterId)
    const planned = await planHsm(installation, cloneCluster, { slot: 2, backupFile: source.backupFile })
    const clone = await runPlanned(planned)
    await expect(stat(planned.provisionFile)).rejects.toMatchObject({ code: 'ENOENT' })
    // The backup belongs to the control plane; the HSM leaves it where it was.
    await stat(source.backupFile)

    // The client handshake is with the clone's certificate, from the clone's trust anchor.
    const conn = await connectPlane(clone)
    const info = await conn.call('getHsmInfo', {})
    expect(info).toMatchObject({ hsmId: planned.hsmId, clusterId: cloneCluster.clusterId, lineage: source.lineage, keyCount: 3, userCount: 4 })
    await expect(connectPlane({ url: clone.url, cluster: source.hsm.cluster })).rejects.toMatchObject({ code: 'CLIENT_ERR_UNTRUSTED' })

    const sourceUsers = (await (await connectPlane(source.hsm)).call('listUsers', {})).users
    expect((await conn.call('listUsers', {})).users).toEqual(sourceUsers)
    // Passwords came along (verifiers, never clear passwords).
    await loginPlane(clone, 'CO', 'admin', 'officer1pw')
    await expectCode(loginPlane(clone, 'CU', 'bob', 'wrongpw1'), 'USER_LOGIN_FAILURE')
    const alice = await loginPlane(clone, 'CU', 'alice', 'alicepw1')

    // The same keys under the same handles, with owner, shares and attributes.
    for (const handle of [source.aes, source.pair.publicHandle, source.pair.privateHandle]) {
      const sourceInfo = await (await loginPlane(source.hsm, 'CU', 'alice', 'alicepw1')).call('getKeyInfo', { handle })
      expect(await alice.call('getKeyInfo', { handle })).toEqual(sourceInfo)
    }
    expect((await alice.call('getAttribute', { handle: source.aes, attribute: Attribute.LABEL })).attributes[0]?.value).toBe('aes')
    expect((await alice.call('findKey', { id: 'k1' })).handles).toEqual([source.aes])
    // The key material is the same: what the source signed, the clone verifies.
    await alice.call('verify', { handle: source.pair.publicHandle, mechanism: 17, data: DATA, signature: source.signature })
    // The deleted key stays deleted, and its handle is never given out again.
    await expectCode(alice.call('getKeyInfo', { handle: source.deleted }), 'INVALID_HANDLE')
    const fresh = (await alice.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: 'clone' })).handle
    expect(fresh).toBe(2 * 262_144 + 6)

    // The clone can be backed up in turn: same lineage, its own cluster id.
    const again = readBackupHeader((await exportBackup(clone)).backup)
    expect(again).toMatchObject({ clusterId: cloneCluster.clusterId, lineage: source.lineage, sourceHsmId: planned.hsmId, keyCount: 4, deletedKeyCount: 1 })

    // A new HSM of the source cluster itself, restored from the same backup (AWS adds HSMs that way).
    const sibling = await runPlanned(await planHsm(installation, source.hsm.cluster, { slot: 1, backupFile: source.backupFile }))
    expect(await (await connectPlane(sibling)).call('getHsmInfo', {})).toMatchObject({ clusterId: source.hsm.cluster.clusterId, lineage: source.lineage })
  })

  it('refuses a backup with one changed byte: exit 2 naming the backup file, no data directory', async () => {
    const installation = await newInstallation()
    const source = await sourceCluster(installation)
    source.hsm.proc.child.kill('SIGTERM')
    const bytes = await readFile(source.backupFile)
    // One byte in the sealed content, one in the clear header (its creation time).
    const header = Buffer.from(bytes).indexOf(Buffer.from(`"createdAtMs":${readBackupHeader(bytes).createdAtMs}`))
    expect(header).toBeGreaterThan(0)
    for (const [what, at] of [['content', bytes.length - 40], ['header', header + '"createdAtMs":'.length + 3]] as const) {
      const changed = Buffer.from(bytes)
      changed[at]! ^= 0x01
      const changedFile = join(installation.dir, `changed-${what}.bin`)
      await writeFile(changedFile, changed)
      const planned = await planHsm(installation, newPlaneCluster(), { backupFile: changedFile })
      const proc = spawnPlanned(planned)
      expect(await proc.exited, what).toBe(HSM_EXIT_CODES.dataUnloadable)
      expect(proc.stdout(), what).toBe('')
      expect(proc.stderr(), what).toContain('HSM_ERR_BACKUP_TAMPERED')
      expect(proc.stderr(), what).toContain(changedFile)
      await expect(stat(planned.dataDir), what).rejects.toMatchObject({ code: 'ENOENT' })
      await stat(planned.provisionFile)
    }
  })

  it('refuses a backup of another installation (another manufacturer key): exit 2, no data directory', async () => {
    const installation = await newInstallation()
    const source = await sourceCluster(installation)
    const elsewhere = await newInstallation()
    const backupFile = await storeBackup(elsewhere, source.backup)
    const planned = await planHsm(elsewhere, newPlaneCluster(), { backupFile })
    const proc = spawnPlanned(planned)
    expect(await proc.exited).toBe(HSM_EXIT_CODES.dataUnloadable)
    expect(proc.stderr()).toContain('HSM_ERR_BACKUP_FOREIGN')
    expect(proc.stderr()).toContain(backupFile)
    await expect(stat(planned.dataDir)).rejects.toMatchObject({ code: 'ENOENT' })

    const notABackup = await storeBackup(installation, new TextEncoder().encode('not a backup at all'))
    const junk = spawnPlanned(await planHsm(installation, newPlaneCluster(), { backupFile: notABackup }))
    expect(await junk.exited).toBe(HSM_EXIT_CODES.dataUnloadable)
    expect(junk.stderr()).toContain('HSM_ERR_BACKUP_FORMAT')
  })
})
