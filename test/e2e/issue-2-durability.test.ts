/**
 * Goal: the guarantees of issue 2 that only show across process deaths, checked on a real lab
 * (`hsmlab up`, three HSM processes) driven by the real shells and the client library:
 * - an HSM killed with SIGKILL in the middle of a stream of key creations loses no acknowledged
 *   key, and after `hsmlab up` every acknowledged key is on every HSM with its one handle;
 * - a user created while one HSM was down stays missing there until `syncUser` copies it;
 * - a masked object with one changed byte is refused, and a store with one changed byte makes the
 *   HSM refuse to start, naming the file.
 * Method: real processes, waits on conditions with deadlines, everything torn down by startLab.
 * The lab is one region with a cluster of three HSMs (the default lab before it became two
 * regions). An HSM's control plane restarts it when it dies; to keep one down, the test kills the
 * control plane first (its HSMs run on, nobody restarts them until `hsmlab up`).
 */
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { HsmConnection } from '@hsmlab/client'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { spawnNode, startLab, waitFor } from '@hsmlab/testing'
import type { LabStatusCluster, StartedLab } from '@hsmlab/testing'

const CMU_BIN = fileURLToPath(new URL('../../packages/shells/bin/cloudhsm_mgmt_util.js', import.meta.url))
const KMU_BIN = fileURLToPath(new URL('../../packages/shells/bin/key_mgmt_util.js', import.meta.url))

function clusterOf (lab: StartedLab): LabStatusCluster {
  const cluster = lab.status.regions[0]?.clusters[0]
  if (cluster === undefined) throw new Error('the lab has no cluster')
  return cluster
}

async function connectAs (cluster: LabStatusCluster, index: number, user: { type: 'CU' | 'CO', name: string, password: string }): Promise<HsmConnection> {
  const hsm = cluster.hsms[index]
  if (hsm === undefined) throw new Error(`no HSM ${index}`)
  const conn = await HsmConnection.connect({ url: hsm.endpoint, trustAnchor: decodeTrustAnchor(readFileSync(String(cluster.trustAnchor), 'utf8')) })
  await conn.call('login', { userType: user.type, userName: user.name, password: user.password })
  return conn
}

async function runShell (bin: string, args: string[], input: string, cwd: string): Promise<{ code: number | string, out: string }> {
  const child = spawnNode(bin, args, { cwd, name: bin })
  child.child.stdin.end(input)
  const code = await child.exited
  return { code, out: child.stdout() + child.stderr() }
}

const alice = { type: 'CU', name: 'alice', password: 'Alice1234' } as const

const THREE_HSMS = {
  regions: [{
    name: 'us-east-1',
    clusters: [{ name: 'primary', hsms: 3, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] }]
  }]
}

describe('issue 2: durability and repair across process deaths', () => {
  it('loses no acknowledged key when the HSM taking the writes is SIGKILLed mid-stream', async () => {
    const lab = await startLab({ lean: true, topology: THREE_HSMS })
    const cluster = clusterOf(lab)
    const writer = await connectAs(cluster, 0, alice)
    const acknowledged: number[] = []
    let stop = false
    const workers = Array.from({ length: 8 }, async () => {
      while (!stop) {
        try {
          const { handle } = await writer.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: 'stream' })
          acknowledged.push(handle)
        } catch {
          return
        }
      }
    })
    await waitFor(() => acknowledged.length >= 200, { what: '200 acknowledged keys', timeoutMs: 30_000 })
    process.kill(Number(cluster.hsms[0]?.pid), 'SIGKILL')
    await Promise.all(workers)
    stop = true
    expect(new Set(acknowledged).size).toBe(acknowledged.length)

    await lab.up()
    for (let i = 0; i < 3; i++) {
      const conn = await connectAs(clusterOf({ ...lab, status: await lab.statusJson() }), i, alice)
      await waitFor(async () => {
        const { handles } = await conn.call('findKey', { label: 'stream' })
        const present = new Set(handles)
        return acknowledged.every(h => present.has(h))
      }, { what: `every acknowledged key on HSM ${i}`, timeoutMs: 30_000 })
      for (const handle of acknowledged.slice(0, 20)) {
        expect((await conn.call('getKeyInfo', { handle })).owner).toBe(3)
      }
      await conn.close()
    }
  })

  it('repairs a user that an HSM missed while it was down, with syncUser', async () => {
    const lab = await startLab({ lean: true, topology: THREE_HSMS })
    const cluster = clusterOf(lab)
    // Without its control plane, a killed HSM stays down until `hsmlab up`.
    process.kill(Number(lab.status.regions[0]?.controlPlane?.pid), 'SIGKILL')
    process.kill(Number(cluster.hsms[2]?.pid), 'SIGKILL')
    await waitFor(async () => (await lab.statusJson()).regions[0]?.clusters[0]?.hsms[2]?.state === 'DOWN', { what: 'HSM 2 DOWN', timeoutMs: 15_000 })
    const created = await runShell(CMU_BIN, [cluster.cmuConfig], 'loginHSM CO admin Admin1234\ncreateUser CU bob Bob12345\ny\nquit\n', lab.cwd)
    const down = new URL(String(cluster.hsms[2]?.endpoint))
    expect(created.out).toContain(`Connection to server ${down.hostname}(${down.hostname}) on port ${down.port} failed:`)
    // The guide prints nothing per server after a createUser that worked; a failure would say so.
    expect(created.out).toMatch(/Creating User bob\(CU\) on 2 nodes\naws-cloudhsm>/)

    await lab.up()
    const before = await runShell(CMU_BIN, [cluster.cmuConfig], 'listUsers\nquit\n', lab.cwd)
    const sections = before.out.split(/Users on server \d\(/).slice(1)
    expect(sections).toHaveLength(3)
    expect(sections[0]).toMatch(/CU\s+bob/)
    expect(sections[2]).not.toMatch(/bob/)
    const bobId = Number(/^\s+(\d+)\s+CU\s+bob/m.exec(sections[0] ?? '')?.[1])

    const repaired = await runShell(CMU_BIN, [cluster.cmuConfig],
      `loginHSM CO admin Admin1234\nserver 0\nsyncUser ${bobId} 2\nexit\nlistUsers\nquit\n`, lab.cwd)
    expect(repaired.out).toContain('ExtractMaskedObject: 0x0 !\nInsertMaskedObject: 0x0 !\nsyncUser success')
    const after = repaired.out.split(/Users on server \d\(/).slice(1)
    expect(after).toHaveLength(3)
    for (const section of after) expect(section).toMatch(new RegExp(`^\\s+${bobId}\\s+CU\\s+bob`, 'm'))

    // bob can now log in on every HSM, with the password given on the others.
    for (let i = 0; i < 3; i++) await (await connectAs(cluster, i, { type: 'CU', name: 'bob', password: 'Bob12345' })).close()
  })

  it('refuses a changed masked object, and an HSM whose store was changed will not start', async () => {
    const lab = await startLab({ lean: true, topology: THREE_HSMS })
    const config = join(lab.dir, 'key_mgmt_util.cfg')
    const made = await runShell(KMU_BIN, ['--config', config], 'loginHSM -u CU -s alice -p Alice1234\ngenSymKey -t 31 -s 32 -l masked\nexit\n', lab.cwd)
    const handle = Number(/Key Handle: (\d+)/.exec(made.out)?.[1])
    expect(handle).toBeGreaterThan(0)
    const extracted = await runShell(KMU_BIN, ['--config', config], `loginHSM -u CU -s alice -p Alice1234\nextractMaskedObject -o ${handle} -out masked.obj\nexit\n`, lab.cwd)
    expect(extracted.out).toContain('Object was masked and written to file "masked.obj"')
    const file = join(lab.cwd, 'masked.obj')
    const bytes = readFileSync(file)
    bytes[bytes.length - 20] = (bytes[bytes.length - 20] ?? 0) ^ 0x01
    writeFileSync(file, bytes)
    const inserted = await runShell(KMU_BIN, ['--config', config], 'loginHSM -u CU -s alice -p Alice1234\ninsertMaskedObject -f masked.obj\nexit\n', lab.cwd)
    expect(inserted.out).toMatch(/Cfm3InsertMaskedObject returned: 0x9e : HSM Error: The masked object failed authentication/)
    expect(inserted.out).not.toMatch(/New Key Handle/)

    const dataDir = String(clusterOf(lab).hsms[1]?.dataDir)
    await lab.down()
    const wal = readdirSync(dataDir).map(f => join(dataDir, f)).find(f => f.endsWith('keys.wal') && statSync(f).size > 200)
    expect(wal, `a key store WAL in ${dataDir}`).toBeDefined()
    const walBytes = readFileSync(String(wal))
    walBytes[Math.floor(walBytes.length / 2)] = (walBytes[Math.floor(walBytes.length / 2)] ?? 0) ^ 0x01
    writeFileSync(String(wal), walBytes)
    const up = await lab.hsmlab(['up'])
    expect(up.code).not.toBe(0)
    expect(up.stdout + up.stderr).toContain('keys.wal')
  })
})
