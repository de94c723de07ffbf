/**
 * Goal: issue 9 §3, a full disk. A lab whose directory (data and logs, as a user has them) is on a
 * small file system that fills up: the key creation that does not fit answers the out-of-space
 * return code (0xa2 RET_STORAGE_FULL, printed by KMU as the real tool prints a return code) and
 * keeps nothing of it; reads go on; the HSM and the control plane stay up, and the control
 * plane answers its own write that does not fit with a clear error; once space is freed, writes
 * work again, and after a restart every acknowledged key is there and no other.
 * Method: a 2 MiB tmpfs mounted for the test (CI runs as root; where mounting is not allowed the
 * test is skipped, its title saying why), the lab started in it by the real `hsmlab up`, a filler
 * file taking all but a little of its space, keys created with the client library until one
 * fails; space is freed by deleting the filler. Cleanup: the lab is torn down, then the tmpfs
 * unmounted, also when the test fails.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { HsmConnection } from '@hsmlab/client'
import { ControlPlaneClient } from '@hsmlab/control-plane'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { ReturnCode } from '@hsmlab/protocol'
import { isRunning, startLab, tmpDir } from '@hsmlab/testing'
import type { LabStatusCluster } from '@hsmlab/testing'
import { kmuOnce } from './kmu-driver.js'

const TOPOLOGY = {
  regions: [{
    name: 'us-east-1',
    clusters: [{ name: 'primary', hsms: 1, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] }]
  }]
}

/** Space left free beside the filler: a few hundred keys' worth. */
const FREE_BYTES = 160 * 1024
/** Far more keys than FREE_BYTES holds, and fewer than the HSM's key limit. */
const KEYS_MAX = 3000

function mount (dir: string, size: string): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' })
}

function unmount (dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' })
  } catch {
    // A process of the lab that outlived its teardown still holds a file: detach it anyway.
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' })
  }
}

/** Why a tmpfs cannot be mounted here, or undefined when it can. */
function cannotMount (): string | undefined {
  const probe = join(tmpdir(), `hsmlab-mount-probe-${process.pid}`)
  mkdirSync(probe, { recursive: true })
  try {
    mount(probe, '64k')
    unmount(probe)
    return undefined
  } catch (err) {
    return `mounting a tmpfs is not allowed here (${String((err as { stderr?: string | Buffer }).stderr ?? (err as Error).message).trim()}); run as root`
  } finally {
    rmSync(probe, { recursive: true, force: true })
  }
}

const skipReason = cannotMount()

/** A small tmpfs, unmounted when the test ends (after the lab in it is torn down). */
function smallFileSystem (): string {
  const dir = join(tmpDir('hsmlab-full-disk-'), 'mnt')
  mkdirSync(dir)
  mount(dir, '2m')
  onTestFinished(() => { unmount(dir) })
  return dir
}

/** Takes all but `leaveBytes` of the file system's free space (everything, with 0). */
function fill (path: string, leaveBytes: number): void {
  const fs = statfsSync(dirname(path))
  const bytes = Math.max(0, fs.bavail * fs.bsize - leaveBytes)
  try {
    writeFileSync(path, Buffer.alloc(bytes))
  } catch (err) {
    // Whatever did not fit was not free.
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
  }
}

async function connectAlice (cluster: LabStatusCluster): Promise<HsmConnection> {
  const conn = await HsmConnection.connect({ url: String(cluster.hsms[0]?.endpoint), trustAnchor: decodeTrustAnchor(readFileSync(String(cluster.trustAnchor), 'utf8')) })
  onTestFinished(async () => { await conn.close().catch(() => undefined) })
  await conn.call('login', { userType: 'CU', userName: 'alice', password: 'Alice1234' })
  return conn
}

const newKey = { keyType: 31, sizeBytes: 32, label: 'fill' }

describe('issue 9: a full disk', () => {
  it.skipIf(skipReason !== undefined)(`rejects the writes that do not fit, keeps serving, and writes again once space returns${skipReason === undefined ? '' : ` (skipped: ${skipReason})`}`, async () => {
    const mnt = smallFileSystem()
    const lab = await startLab({ lean: true, topology: TOPOLOGY, cwd: mnt })
    const region = lab.status.regions[0]
    const cluster = region?.clusters[0]
    if (region?.controlPlane === null || region === undefined || cluster === undefined) throw new Error('the lab has no control plane or cluster')
    const hsmPid = Number(cluster.hsms[0]?.pid)
    const cpPid = Number(region.controlPlane.pid)
    const cp = new ControlPlaneClient({ endpoint: region.controlPlane.endpoint, region: region.name })
    const conn = await connectAlice(cluster)

    fill(join(mnt, 'filler'), FREE_BYTES)
    const acknowledged: number[] = []
    let failure: unknown
    while (failure === undefined && acknowledged.length < KEYS_MAX) {
      try {
        acknowledged.push((await conn.call('generateSymmetricKey', newKey)).handle)
      } catch (err) {
        failure = err
      }
    }
    expect(acknowledged.length).toBeGreaterThan(0)
    expect(failure).toMatchObject({ status: ReturnCode.STORAGE_FULL.code, code: 'RET_STORAGE_FULL', message: expect.stringContaining('free space') })
    // Whatever the failed write left free is taken too, so that every write below finds the disk full.
    fill(join(mnt, 'filler-2'), 0)

    // The disk stays full: the next creation fails the same way, also as KMU prints it.
    await expect(conn.call('generateSymmetricKey', newKey)).rejects.toMatchObject({ status: ReturnCode.STORAGE_FULL.code })
    const kmu = await kmuOnce(tmpDir(), ['--config', join(lab.dir, 'key_mgmt_util.cfg'), 'singlecmd',
      'loginHSM', '-u', 'CU', '-s', 'alice', '-p', 'Alice1234', 'genSymKey', '-t', '31', '-s', '32', '-l', 'fill'])
    expect(kmu.out).toContain('\tCfm3GenerateSymmetricKey returned: 0xa2 : HSM Error: The HSM has no storage space left for this change; nothing was changed')

    // Reads go on, and show exactly the acknowledged keys.
    expect((await conn.call('findKey', { label: 'fill' })).handles.sort((a, b) => a - b)).toEqual([...acknowledged].sort((a, b) => a - b))
    expect((await conn.call('getKeyInfo', { handle: acknowledged[0] ?? 0 })).owner).toBe(3)
    // The control plane answers its own write that does not fit, plainly, and its reads.
    const tag = { ResourceId: cluster.id, TagList: [{ Key: 'full', Value: 'disk' }] }
    await expect(cp.call('TagResource', tag)).rejects.toMatchObject({
      awsType: 'CloudHsmInternalFailureException', statusCode: 500, message: expect.stringContaining('the file system is full')
    })
    expect((await cp.describeClusters()).Clusters?.[0]?.TagList).not.toContainEqual({ Key: 'full', Value: 'disk' })
    expect(isRunning(hsmPid)).toBe(true)
    expect(isRunning(cpPid)).toBe(true)

    // Space returns: writes work again, in the same processes.
    rmSync(join(mnt, 'filler'))
    rmSync(join(mnt, 'filler-2'))
    acknowledged.push((await conn.call('generateSymmetricKey', newKey)).handle)
    await cp.call('TagResource', tag)
    expect((await cp.describeClusters()).Clusters?.[0]?.TagList).toContainEqual({ Key: 'full', Value: 'disk' })
    expect(isRunning(hsmPid)).toBe(true)
    expect(isRunning(cpPid)).toBe(true)
    await conn.close()

    // Every acknowledged key, and no other, survives a restart of the whole lab.
    await lab.down()
    const again = await lab.up()
    const restarted = await connectAlice(again.regions[0]?.clusters[0] ?? cluster)
    expect((await restarted.call('findKey', { label: 'fill' })).handles.sort((a, b) => a - b)).toEqual([...acknowledged].sort((a, b) => a - b))
  })
})
