/**
 * Goal (issue 4, "Network-fault testing"): a syncKey / syncUser whose insert times out on the
 * destination leaves it with the whole object or nothing, CMU says which server failed and why,
 * and once the link heals the same syncKey / syncUser succeeds and makes no second copy. Both
 * ways a timeout can happen are covered: the insert never reaches the destination (nothing of it
 * there), and the insert is applied but its answer is lost (the whole object there).
 *
 * Method: the default lab (us-east-1/primary and its clone us-west-2/dr) through startLab; keys
 * made by alice with the real KMU bin on primary's first HSM, users made with the real CMU bin on
 * primary; syncKey / syncUser typed into the real CMU bin on the lab's cross-cluster
 * configuration (server 0 primary's first HSM, server 1 dr's first HSM) with a short
 * `--request-timeout-ms`. The fault is a Toxiproxy `timeout` toxic with `timeout` 0 (drop every
 * byte, never close) on dr's first HSM's client link, set through the lab's fault proxy
 * (FaultClient on `faults.endpoint`) after the login: on its upstream the insert request is
 * lost, on its downstream its answer is. What the destination holds is read behind the fault
 * proxy (the HSMs' `directEndpoint`), with findAllKeys hashes and listUsers rows.
 */
import { describe, expect, it } from 'vitest'
import { FaultClient } from '@hsmlab/fault-proxy'
import { startLab, waitFor } from '@hsmlab/testing'
import type { LabStatusCluster, StartedLab } from '@hsmlab/testing'
import { startCmuBin } from './cmu-helpers.js'
import { clusterOf, cmu, configFor, fault, hostOf, keyHashes, makeKey, outputOf, userRows } from './regions-helpers.js'

const ALICE: [string, string] = ['alice', 'Alice1234']
const LOGIN = 'loginHSM CO admin Admin1234'
/** Short enough to keep the test quick, long enough for an answer on a loaded 2-core machine. */
const REQUEST_TIMEOUT_MS = 2_500
/** dr's first HSM's client link: server 1 of the cross-cluster configuration. */
const DESTINATION_LINK = 'us-west-2/dr/hsm-0'

/** What findAllKeys (alice's keys, with their hash) and listUsers show on each server of `config`. */
async function observe (config: string, alice: number): Promise<{ keys: ReturnType<typeof keyHashes>, users: Map<number, string[]> }> {
  const out = await cmu(config, [LOGIN, `findAllKeys ${alice} 1`, 'listUsers', 'quit'])
  return { keys: keyHashes(out), users: userRows(out) }
}

/** Creates a crypto user on every HSM of `cluster` with CMU; resolves with its id. */
async function createUser (cluster: LabStatusCluster, name: string, password: string): Promise<number> {
  const out = await cmu(cluster.cmuConfig, [LOGIN, `createUser CU ${name} ${password}`, 'y', 'listUsers', 'quit'])
  expect(out).not.toMatch(/createUser failed/)
  const row = userRows(out).get(0)?.find(r => r.endsWith(` CU ${name}`))
  if (row === undefined) throw new Error(`${name} is not listed after createUser:\n${out}`)
  return Number(row.split(' ')[0])
}

/**
 * Types `syncKey KEY 1` and `syncUser USER 1` into a CMU on the cross-cluster configuration
 * while a `timeout` toxic drops `stream` of the destination's link; resolves with what each
 * printed. Then heals the lab's links (`hsmlab fault heal`), which closes the connection the
 * toxic held, and leaves CMU.
 */
async function syncThroughLostStream (lab: StartedLab, cross: string, stream: 'upstream' | 'downstream', key: number, user: number): Promise<{ syncKey: string, syncUser: string }> {
  const faults = new FaultClient({ url: lab.status.faults.endpoint as string })
  const session = startCmuBin([cross, '--request-timeout-ms', String(REQUEST_TIMEOUT_MS)])
  session.type(LOGIN)
  let at = await session.waitForOutput('loginHSM success on server 1(')
  session.type('server 0')
  at = await session.waitForOutput('server 0>', at)
  await faults.addToxic(DESTINATION_LINK, { type: 'timeout', stream, attributes: { timeout: 0 } })
  session.type(`syncKey ${key} 1`)
  at = await session.waitForOutput('server 0>', at)
  session.type(`syncUser ${user} 1`)
  await session.waitForOutput('server 0>', at)
  await fault(lab, ['heal'])
  session.type('exit')
  session.type('quit')
  expect(await session.process.exited).toBe(0)
  const printed = session.process.stdout()
  return { syncKey: outputOf(printed, `syncKey ${key} 1`), syncUser: outputOf(printed, `syncUser ${user} 1`) }
}

describe('syncKey and syncUser that time out on the destination', () => {
  it('leave the whole object or nothing there, say which server failed and why, and a retry after the heal makes one copy', async () => {
    const lab = await startLab({ lean: true })
    const primary = clusterOf(lab.status, 'us-east-1', 'primary')
    const dr = clusterOf(lab.status, 'us-west-2', 'dr')
    const cross = lab.status.cmuConfigs['us-east-1/primary->us-west-2/dr'] as string
    const destination = `server 1(${hostOf(dr.hsms[0] as { endpoint: string })})`
    const timedOut = (command: string): string =>
      `${command} failed: server did not respond within ${REQUEST_TIMEOUT_MS} ms\n${command} failed on ${destination}\n`
    const onPrimary = await configFor(lab.cwd, 'primary-0.cfg', [{ cluster: primary, hsm: primary.hsms[0] as { endpoint: string } }])
    // Server 0: the source; servers 1 and 2: dr's HSMs, reached behind the fault proxy.
    const observer = await configFor(lab.cwd, 'observer.cfg', [
      { cluster: primary, hsm: primary.hsms[0] as { endpoint: string } },
      ...dr.hsms.map(hsm => ({ cluster: dr, hsm: { endpoint: hsm.directEndpoint as string } }))
    ])
    const aliceRow = userRows(await cmu(primary.cmuConfig, ['listUsers', 'quit'])).get(0)?.find(r => r.endsWith(' CU alice'))
    const alice = Number(aliceRow?.split(' ')[0])
    expect(alice).toBeGreaterThan(0)

    // 1. The insert is applied, its answer lost: the whole key (the source's hash: it is alice's
    // only key) and the whole user (she logs in with her password) are on the destination.
    const applied = await makeKey(lab.cwd, onPrimary, ALICE, 'lost-answer')
    const carol = await createUser(primary, 'carol', 'Carol1234')
    const lostAnswer = await syncThroughLostStream(lab, cross, 'downstream', applied, carol)
    expect(lostAnswer.syncKey).toBe(timedOut('syncKey'))
    expect(lostAnswer.syncUser).toBe(`ExtractMaskedObject: 0x0 !\nInsertMaskedObject: 0x30000087 !\n${timedOut('syncUser')}`)
    let seen = await observe(observer, alice)
    const firstHash = seen.keys.get(0)?.hash
    expect(seen.keys.get(0)).toMatchObject({ count: 1, handles: [applied] })
    expect(seen.keys.get(1)).toEqual(seen.keys.get(0))
    expect(seen.users.get(1)?.filter(r => r.endsWith(' carol'))).toEqual([`${carol} CU carol`])
    expect(await cmu(observer, ['loginHSM CU carol Carol1234', 'quit'])).toMatch(/loginHSM success on server 1\(/)

    // 2. The insert never reaches the destination: nothing of it there, also once the link healed.
    const lost = await makeKey(lab.cwd, onPrimary, ALICE, 'lost-request')
    const bob = await createUser(primary, 'bob', 'Bob12345')
    const lostRequest = await syncThroughLostStream(lab, cross, 'upstream', lost, bob)
    expect(lostRequest.syncKey).toBe(timedOut('syncKey'))
    expect(lostRequest.syncUser).toBe(`ExtractMaskedObject: 0x0 !\nInsertMaskedObject: 0x30000087 !\n${timedOut('syncUser')}`)
    seen = await observe(observer, alice)
    expect(seen.keys.get(0)?.handles).toEqual([applied, lost])
    expect(seen.keys.get(1)).toEqual({ count: 1, handles: [applied], hash: firstHash })
    expect(seen.users.get(1)?.filter(r => r.endsWith(' bob'))).toEqual([])
    expect(seen.users.get(2)?.filter(r => r.endsWith(' bob'))).toEqual([])

    // 3. The same syncKey and syncUser again: each succeeds, and the destination holds one copy
    // of each key (the source's hash, the source's handles) and of each user.
    const retries = [`syncKey ${applied} 1`, `syncUser ${carol} 1`, `syncKey ${lost} 1`, `syncUser ${bob} 1`]
    const retried = await cmu(cross, [LOGIN, 'server 0', ...retries, 'exit', 'quit'])
    expect(retries.map(line => outputOf(retried, line))).toEqual([
      'syncKey success\n',
      'ExtractMaskedObject: 0x0 !\nInsertMaskedObject: 0x0 !\nsyncUser success\n',
      'syncKey success\n',
      'ExtractMaskedObject: 0x0 !\nInsertMaskedObject: 0x0 !\nsyncUser success\n'
    ])
    seen = await observe(observer, alice)
    expect(seen.keys.get(0)?.handles).toEqual([applied, lost])
    expect(seen.keys.get(1)).toEqual(seen.keys.get(0))
    expect(seen.users.get(1)?.filter(r => / CU (bob|carol)$/.test(r))).toEqual([`${carol} CU carol`, `${bob} CU bob`])
    // dr's other HSM gets the keys by replication, one copy each.
    await waitFor(async () => {
      const there = (await observe(observer, alice)).keys.get(2)
      return there?.hash === seen.keys.get(0)?.hash ? there : undefined
    }, { timeoutMs: 20_000, what: 'both keys on dr\'s second HSM' })
  })
})
