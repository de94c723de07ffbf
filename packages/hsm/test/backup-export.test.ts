/**
 * `exportBackup` on a real HSM process: who may ask (the trust anchor's signature over this HSM's
 * id and a time within 5 minutes of its clock, no login needed), what the clear header tells
 * without any secret, and — in process — that a backup opens only with the persistent backup key
 * of its installation and that a change of any single byte is refused.
 */
import { describe, expect, it } from 'vitest'
import { generateSecretKey } from '@hsmlab/crypto'
import { createBackup, deriveBackupKey, openBackup } from '../src/backup.js'
import type { KeyRecord, KeyTombstone, UserRecord } from '../src/context.js'
import { newClusterUsers } from '../src/provisioning.js'
import { HSM_ERR_BACKUP_FOREIGN, HSM_ERR_BACKUP_FORMAT, HSM_ERR_BACKUP_TAMPERED, createManufacturerKey, readBackupHeader, signBackupRequest } from '../src/index.js'
import { connectPlane, exportBackup, loginPlane, newInstallation, newPlaneCluster, planHsm, runPlanned } from './backup-helpers.js'
import { expectCode } from './helpers.js'

describe('exportBackup', () => {
  it('answers a request signed by the trust anchor for this HSM and now, without a login', async () => {
    const installation = await newInstallation()
    const cluster = newPlaneCluster()
    const hsm = await runPlanned(await planHsm(installation, cluster))
    const co = await loginPlane(hsm, 'PRECO', 'admin', 'password')
    await co.call('changePassword', { userType: 'PRECO', userName: 'admin', password: 'officer1pw' })
    await co.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' })
    const alice = await loginPlane(hsm, 'CU', 'alice', 'alicepw1')
    const kept = (await alice.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: 'kept' })).handle
    const gone = (await alice.call('generateSymmetricKey', { keyType: 31, sizeBytes: 16, label: 'gone' })).handle
    await alice.call('deleteKey', { handle: gone })
    const info = await (await connectPlane(hsm)).call('getHsmInfo', {})

    const before = Date.now()
    const result = await exportBackup(hsm)
    expect(result).toMatchObject({ keyCount: 1, userCount: 3 })
    expect(result.createdAtMs).toBeGreaterThanOrEqual(before - 1000)
    expect(result.backup).toBeInstanceOf(Uint8Array)
    // The control plane reads the header without any secret; nothing of the content is in clear.
    expect(readBackupHeader(result.backup)).toEqual({
      version: 1,
      clusterId: cluster.clusterId,
      lineage: info.lineage,
      sourceHsmId: hsm.hsmId,
      createdAtMs: result.createdAtMs,
      keyCount: 1,
      deletedKeyCount: 1,
      userCount: 3,
      backupKeyId: expect.stringMatching(/^[0-9a-f]{16}$/)
    })
    const text = Buffer.from(result.backup).toString('latin1')
    expect(text).not.toContain('alice')
    expect(text).not.toContain('kept')
    expect(kept).toBeGreaterThan(0)
    // Two backups of the same HSM are sealed under different ephemeral keys.
    const second = await exportBackup(hsm)
    expect(readBackupHeader(second.backup).backupKeyId).toBe(readBackupHeader(result.backup).backupKeyId)
    expect(Buffer.from(second.backup).equals(Buffer.from(result.backup))).toBe(false)
  })

  it('refuses a bad signature, another HSM\'s, a stale or future time, and no signature', async () => {
    const installation = await newInstallation()
    const cluster = newPlaneCluster()
    const hsm = await runPlanned(await planHsm(installation, cluster))
    const other = await planHsm(installation, cluster)
    const conn = await connectPlane(hsm)
    const now = Date.now()
    const secret = cluster.anchor.secretKey
    const minutes = (n: number): number => n * 60_000
    await expectCode(conn.call('exportBackup', { requestedAtMs: now, signature: signBackupRequest(newPlaneCluster().anchor.secretKey, hsm.hsmId, now) }), 'PERMISSION_DENIED')
    await expectCode(conn.call('exportBackup', { requestedAtMs: now, signature: signBackupRequest(secret, other.hsmId, now) }), 'PERMISSION_DENIED')
    await expectCode(conn.call('exportBackup', { requestedAtMs: now + 1, signature: signBackupRequest(secret, hsm.hsmId, now) }), 'PERMISSION_DENIED')
    const stale = now - minutes(6)
    await expect(conn.call('exportBackup', { requestedAtMs: stale, signature: signBackupRequest(secret, hsm.hsmId, stale) }))
      .rejects.toMatchObject({ code: 'RET_PERMISSION_DENIED', message: expect.stringContaining('ms away from this HSM\'s clock') })
    const future = now + minutes(6)
    await expectCode(conn.call('exportBackup', { requestedAtMs: future, signature: signBackupRequest(secret, hsm.hsmId, future) }), 'PERMISSION_DENIED')
    await expectCode(conn.call('exportBackup', { requestedAtMs: now, signature: new Uint8Array(0) }), 'PERMISSION_DENIED')
    await expectCode(conn.call('exportBackup', { requestedAtMs: now } as never), 'INVALID_INPUT')
    // Within the allowed skew, either way, it works.
    for (const at of [now - minutes(4), now + minutes(4)]) {
      const { keyCount } = await conn.call('exportBackup', { requestedAtMs: at, signature: signBackupRequest(secret, hsm.hsmId, at) })
      expect(keyCount).toBe(0)
    }
  })
})

describe('backup bytes', () => {
  async function sample (): Promise<{ bytes: Uint8Array, users: UserRecord[], keys: Array<KeyRecord | KeyTombstone>, maskingKey: Uint8Array }> {
    const users = await newClusterUsers(16)
    const keys: Array<KeyRecord | KeyTombstone> = [
      { handle: 6, keyClass: 4, keyType: 31, owner: 3, sharedWith: [4], mValue: 0, attributes: { 3: 'label', 1: 1 }, material: new Uint8Array(32).fill(7) },
      { handle: 7, deleted: true }
    ]
    const maskingKey = generateSecretKey()
    const identity = { hsmId: 'hsm-abcdefghijk', clusterId: 'cluster-abcdefghijk', lineage: 'lineage-abcdefghijklmnop', maskingKey }
    const { bytes } = createBackup({ identity, users, keys, createdAtMs: 1_700_000_000_000 }, backupKey)
    return { bytes, users, keys, maskingKey }
  }
  const manufacturerKey = createManufacturerKey()
  const backupKey = deriveBackupKey(manufacturerKey)

  it('opens with the backup key of its installation only', async () => {
    const { bytes, users, keys, maskingKey } = await sample()
    const opened = openBackup(bytes, backupKey)
    expect(opened.maskingKey).toEqual(maskingKey)
    expect(opened.users.map(u => [u.userId, u.userName, Buffer.from(u.password.hash).toString('hex')]))
      .toEqual(users.map(u => [u.userId, u.userName, Buffer.from(u.password.hash).toString('hex')]))
    expect(opened.keys).toEqual(keys)
    expect(opened.header).toMatchObject({ keyCount: 1, deletedKeyCount: 1, userCount: 2, createdAtMs: 1_700_000_000_000 })
    expect(() => openBackup(bytes, deriveBackupKey(createManufacturerKey()))).toThrow(expect.objectContaining({ code: HSM_ERR_BACKUP_FOREIGN }))
    expect(() => readBackupHeader(new Uint8Array(100))).toThrow(expect.objectContaining({ code: HSM_ERR_BACKUP_FORMAT }))
    expect(() => openBackup(bytes.subarray(0, bytes.length - 1), backupKey)).toThrow(expect.objectContaining({ code: HSM_ERR_BACKUP_TAMPERED }))
  })

  it('refuses a change of any single byte', async () => {
    const { bytes } = await sample()
    const codes = new Set<string>()
    for (let i = 0; i < bytes.length; i++) {
      const changed = bytes.slice()
      changed[i]! ^= 0x01
      let code: string | undefined
      try {
        openBackup(changed, backupKey)
      } catch (err) {
        code = (err as { code?: string }).code
      }
      expect([HSM_ERR_BACKUP_FORMAT, HSM_ERR_BACKUP_TAMPERED], `byte ${i}`).toContain(code)
      codes.add(code as string)
    }
    expect(codes).toContain(HSM_ERR_BACKUP_TAMPERED)
    expect(codes).toContain(HSM_ERR_BACKUP_FORMAT)
  })
})
