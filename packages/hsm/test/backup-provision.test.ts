/**
 * `hsmlab-hsm --provision FILE`: an HSM of a brand-new cluster made by the process itself from a
 * control plane's provision file (which is then deleted), restarts that ignore the flag, and
 * provision files that are refused (exit 2, no data directory). Real processes throughout.
 */
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { verifyCertificate } from '@hsmlab/crypto'
import {
  HSM_EXIT_CODES, createClusterSecrets, issueHsmIdentity, provisionHsm, readProvisionFile, writeProvisionFile
} from '../src/index.js'
import { connectPlane, loginPlane, newInstallation, newPlaneCluster, planHsm, runPlanned, spawnPlanned } from './backup-helpers.js'
import { readReadyLine } from './helpers.js'

describe('hsmlab-hsm --provision', () => {
  it('makes the first HSM of a new cluster from the file, deletes the file, and serves it', async () => {
    const installation = await newInstallation()
    const cluster = newPlaneCluster()
    const planned = await planHsm(installation, cluster, { slot: 3, label: 'us-east-1/primary/0' })
    expect((await stat(planned.provisionFile)).mode & 0o777).toBe(0o600)
    const hsm = await runPlanned(planned)
    expect(hsm.ready.hsmId).toBe(planned.hsmId)
    await expect(stat(planned.provisionFile)).rejects.toMatchObject({ code: 'ENOENT' })
    // Only the data directory is left beside it: no temporary directory of the provisioning.
    expect((await readdir(join(installation.dir, 'hsms'))).sort()).toEqual([planned.hsmId])

    // The client's handshake checks the certificate the control plane issued.
    const conn = await connectPlane(hsm)
    const info = await conn.call('getHsmInfo', {})
    expect(info).toMatchObject({ hsmId: planned.hsmId, clusterId: cluster.clusterId, label: 'us-east-1/primary/0', userCount: 2, keyCount: 0 })
    expect(info.lineage).toMatch(/^lineage-[2-7a-z]{16}$/)
    const { users } = await conn.call('listUsers', {})
    expect(users.map(u => [u.userId, u.userType, u.userName])).toEqual([[1, 'PRECO', 'admin'], [2, 'AU', 'app_user']])

    // Activation and keys work as on any HSM; handles are in the file's slot.
    const co = await loginPlane(hsm, 'PRECO', 'admin', 'password')
    await co.call('changePassword', { userType: 'PRECO', userName: 'admin', password: 'officer1pw' })
    await co.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' })
    const alice = await loginPlane(hsm, 'CU', 'alice', 'alicepw1')
    const { handle } = await alice.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: 'k' })
    expect(handle).toBe(3 * 262_144 + 6)

    // Another cluster's anchor does not trust it.
    await expect(connectPlane({ url: hsm.url, cluster: newPlaneCluster() })).rejects.toMatchObject({ code: 'CLIENT_ERR_UNTRUSTED' })
  })

  it('ignores --provision once the data directory is provisioned (restarts are idempotent)', async () => {
    const installation = await newInstallation()
    const cluster = newPlaneCluster()
    const planned = await planHsm(installation, cluster)
    const first = await runPlanned(planned)
    const lineage = (await (await connectPlane(first)).call('getHsmInfo', {})).lineage
    const co = await loginPlane(first, 'PRECO', 'admin', 'password')
    await co.call('changePassword', { userType: 'PRECO', userName: 'admin', password: 'officer1pw' })
    first.proc.child.kill('SIGTERM')
    expect(await first.proc.exited).toBe(0)

    // The file is gone: the flag must not even read it.
    const again = spawnPlanned(planned)
    const ready = await readReadyLine(again)
    expect(ready.hsmId).toBe(planned.hsmId)
    const url = `ws://${ready.host}:${ready.port}`
    expect((await (await connectPlane({ url, cluster })).call('getHsmInfo', {})).lineage).toBe(lineage)
    await loginPlane({ url, cluster }, 'CO', 'admin', 'officer1pw')
    again.child.kill('SIGTERM')
    expect(await again.exited).toBe(0)

    // A file that is there, even one for another HSM, is left alone and not used.
    const other = await planHsm(installation, cluster)
    const third = spawnPlanned({ ...planned, provisionFile: other.provisionFile })
    expect((await readReadyLine(third)).hsmId).toBe(planned.hsmId)
    await stat(other.provisionFile)
  })

  it('refuses a provision file that does not check out: exit 2, naming the file, no data directory', async () => {
    const installation = await newInstallation()
    const cluster = newPlaneCluster()
    const planned = await planHsm(installation, cluster)
    const good = JSON.parse(await readFile(planned.provisionFile, 'utf8')) as Record<string, unknown>
    const cases: Array<[string, unknown]> = [
      ['not json', 'this is not { json'],
      ['version 2', { ...good, version: 2 }],
      ['another anchor', { ...good, anchorPublicKey: Buffer.from(newPlaneCluster().anchor.publicKey).toString('base64') }],
      ['another cluster id', { ...good, clusterId: newPlaneCluster().clusterId }],
      ['a relative backup path', { ...good, backupFile: 'backup.bin' }],
      ['a missing backup', { ...good, backupFile: join(installation.dir, 'missing.bin') }]
    ]
    for (const [what, content] of cases) {
      await writeFile(planned.provisionFile, typeof content === 'string' ? content : JSON.stringify(content))
      const proc = spawnPlanned(planned)
      expect(await proc.exited, what).toBe(HSM_EXIT_CODES.dataUnloadable)
      expect(proc.stderr(), what).toContain('HSM_ERR_PROVISION_FILE')
      expect(proc.stderr(), what).toContain(what === 'a missing backup' ? 'missing.bin' : planned.provisionFile)
      expect(proc.stdout(), what).toBe('')
      await expect(stat(planned.dataDir), what).rejects.toMatchObject({ code: 'ENOENT' })
      // The file is kept, so that the failure can be looked into.
      await stat(planned.provisionFile)
    }
    // Nothing was even begun: the checks come before any directory is made.
    await expect(stat(join(installation.dir, 'hsms'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})

describe('provision files', () => {
  it('are checked when written and read back as written', async () => {
    const installation = await newInstallation()
    const cluster = newPlaneCluster()
    const hsmId = 'hsm-abcdefghijk'
    const { identity, certificate } = issueHsmIdentity(cluster.anchor.secretKey, { hsmId, clusterId: cluster.clusterId })
    const base = { hsmId, clusterId: cluster.clusterId, slot: 1, anchorPublicKey: cluster.anchor.publicKey, identitySecretKey: identity.secretKey, certificate }
    const path = join(installation.dir, 'p.json')
    await writeProvisionFile(path, { ...base, backupFile: '/abs/backup' })
    const back = await readProvisionFile(path)
    expect(back).toEqual({ ...base, backupFile: '/abs/backup' })
    verifyCertificate(cluster.anchor.publicKey, back.certificate)
    const text = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>
    expect(Object.keys(text).sort()).toEqual(['anchorPublicKey', 'backupFile', 'certificate', 'clusterId', 'hsmId', 'identitySecretKey', 'slot', 'version'])

    const other = issueHsmIdentity(cluster.anchor.secretKey, { hsmId, clusterId: cluster.clusterId })
    const refused: Array<Partial<typeof base> & { backupFile?: string }> = [
      { hsmId: 'hsm-1' },
      { slot: 8192 },
      { identitySecretKey: other.identity.secretKey },
      { anchorPublicKey: newPlaneCluster().anchor.publicKey },
      { identitySecretKey: new Uint8Array(32) },
      { backupFile: 'relative' }
    ]
    for (const change of refused) {
      await expect(writeProvisionFile(join(installation.dir, 'q.json'), { ...base, ...change })).rejects.toMatchObject({ code: 'HSM_ERR_INVALID_ARGUMENT' })
    }
    await expect(stat(join(installation.dir, 'q.json'))).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('provisionHsm still refuses a directory that holds an HSM, and leaves no partial directory', async () => {
    const installation = await newInstallation()
    const dataDir = join(installation.dir, 'in-place')
    await mkdir(dataDir)
    await writeFile(join(dataDir, 'notes.txt'), 'kept')
    const cluster = createClusterSecrets()
    const manufacturerKey = new Uint8Array(32)
    await provisionHsm({ dataDir, manufacturerKey, slot: 0, cluster })
    expect(await readdir(dataDir)).toEqual(expect.arrayContaining(['notes.txt', 'storage.key']))
    await expect(provisionHsm({ dataDir, manufacturerKey, slot: 0, cluster })).rejects.toMatchObject({ code: 'HSM_ERR_ALREADY_PROVISIONED' })
    expect((await readdir(installation.dir)).filter(f => f.includes('provisioning'))).toEqual([])
  })
})
