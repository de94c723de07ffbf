/**
 * Goal (issue 9 §2): an HSM whose store files were put back from an earlier time, cut short at a
 * record boundary, or deleted (one file, or every file of a store) refuses to start instead of
 * serving an older state, names the file, and the lab says so: `hsmlab up` fails naming it, and
 * `hsmlab status` (text and --json) shows the HSM DEGRADED with that reason.
 * Method: a real lab (`hsmlab up`, one cluster of four HSM processes); a key made durable on all
 * four (minServers 4); `hsmlab down`; each HSM's data directory damaged one way while it is
 * stopped; `hsmlab up` again; then `hsmlab status`. Everything is torn down by startLab.
 */
import { readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { HsmConnection } from '@hsmlab/client'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import { startLab } from '@hsmlab/testing'
import type { LabStatusCluster } from '@hsmlab/testing'

const FOUR_HSMS = {
  regions: [{
    name: 'us-east-1',
    clusters: [{ name: 'primary', hsms: 4, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] }]
  }]
}

/** Start offsets of the records of a WAL file (u32 length, u32 ~length, sealed bytes). */
function recordStarts (bytes: Buffer): number[] {
  const starts: number[] = []
  for (let at = 0; at < bytes.length; at += 8 + bytes.readUInt32LE(at)) starts.push(at)
  return starts
}

describe('issue 9: an HSM refuses store files put back, cut short or deleted, and the lab says so', () => {
  it('refuses each, naming the file, in hsmlab up and as DEGRADED in hsmlab status', async () => {
    const lab = await startLab({ lean: true, topology: FOUR_HSMS })
    const cluster = lab.status.regions[0]?.clusters[0] as LabStatusCluster
    const dataDirs = cluster.hsms.map(h => String(h.dataDir))
    expect(dataDirs).toHaveLength(4)
    // keys.wal of HSM 0 before the key exists: the earlier copy put back below.
    const earlierKeysWal = readFileSync(join(dataDirs[0]!, 'keys.wal'))

    const conn = await HsmConnection.connect({ url: cluster.hsms[0]!.endpoint, trustAnchor: decodeTrustAnchor(readFileSync(String(cluster.trustAnchor), 'utf8')) })
    await conn.call('login', { userType: 'CU', userName: 'alice', password: 'Alice1234' })
    // Durable on all four HSMs before it returns.
    await conn.call('generateSymmetricKey', { keyType: 31, sizeBytes: 32, label: 'acknowledged', minServers: 4 })
    await conn.close()
    await lab.down()

    // HSM 0: keys.wal put back from before the key (the key silently gone, today).
    writeFileSync(join(dataDirs[0]!, 'keys.wal'), earlierKeysWal)
    // HSM 1: keys.wal cut at its last record boundary (the last acknowledged key gone).
    const keysWal1 = join(dataDirs[1]!, 'keys.wal')
    truncateSync(keysWal1, recordStarts(readFileSync(keysWal1)).at(-1))
    // HSM 2: users.wal deleted (no users at all, not even the CO).
    rmSync(join(dataDirs[2]!, 'users.wal'))
    // HSM 3: every file of its key store deleted (an empty key store, as if new).
    for (const file of ['keys.wal', 'keys.snap', 'keys.manifest']) rmSync(join(dataDirs[3]!, file), { force: true })
    const named = [
      join(dataDirs[0]!, 'keys.wal'),
      keysWal1,
      join(dataDirs[2]!, 'users.wal'),
      join(dataDirs[3]!, 'keys.manifest')
    ]

    const up = await lab.hsmlab(['up'])
    expect(up.code, up.stdout + up.stderr).not.toBe(0)
    expect(up.stdout + up.stderr).toMatch(/is DEGRADED: The HSM cannot be started: .*HSM_ERR_STORE_LOAD.*STORE_ERR_TAMPERED/)
    expect(named.some(file => (up.stdout + up.stderr).includes(file)), up.stdout + up.stderr).toBe(true)

    const status = await lab.statusJson()
    const hsms = status.regions[0]!.clusters[0]!.hsms
    for (let i = 0; i < 4; i++) {
      expect(hsms[i], `HSM ${i}`).toMatchObject({ state: 'DEGRADED', pid: null, stateMessage: expect.stringContaining(named[i]!) })
      expect(String(hsms[i]!.stateMessage)).toContain('STORE_ERR_TAMPERED')
    }
    expect(String(hsms[0]!.stateMessage)).toContain('acknowledged records are missing')
    expect(String(hsms[2]!.stateMessage)).toContain('users.wal: is missing')
    expect(String(hsms[3]!.stateMessage)).toContain('but the store must exist')

    const text = await lab.hsmlab(['status'])
    for (let i = 0; i < 4; i++) {
      expect(text.stdout).toContain(`${hsms[i]!.id}: The HSM cannot be started`)
      expect(text.stdout).toContain(`${hsms[i]!.id}: its data is refused: restore it from a peer or a backup`)
    }
    for (const file of named) expect(text.stdout).toContain(file)
    expect(text.stdout).toMatch(/DEGRADED/)
  }, 120_000)
})
