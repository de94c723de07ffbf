/**
 * `ClusterClient` over a CMU configuration file (written and read with `writeCmuConfig` /
 * `readCmuConfig`) listing real HSMs of one cluster and servers that are down: opening never
 * throws for a server it cannot reach, server ids follow the file's order, and a fanned-out call
 * gets every answering HSM's result while each server that is down — unreachable from the start,
 * stopped later, disabled, or not answering in time — reports its own error.
 */
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import type { ClientError } from '../src/index.js'
import {
  CLIENT_ERR_CLOSED, CLIENT_ERR_CONFIG, CLIENT_ERR_CONNECT, CLIENT_ERR_TIMEOUT, ClusterClient, readCmuConfig, writeCmuConfig
} from '../src/index.js'
import type { ServerEntry } from '../src/index.js'
import { closedPort, muteHsm, serverConfig, startTestCluster, writeAnchorFile } from './helpers.js'

async function open (...args: Parameters<typeof ClusterClient.open>): Promise<ClusterClient> {
  const client = await ClusterClient.open(...args)
  onTestFinished(async () => { await client.close() })
  return client
}

function codeOf (err: Error | undefined): string | undefined {
  return (err as ClientError | undefined)?.code
}

describe('ClusterClient', () => {
  it('connects to the servers of a configuration in its order; a fan-out gets the answers of the HSMs that are up and the error of each that is down', async () => {
    const hsms = await startTestCluster(2)
    const cluster = hsms[0]!.cluster
    const caFile = await writeAnchorFile(cluster)
    const down = await closedPort()
    const configFile = join(tmpDir('hsmlab-client-cfg-'), 'cloudhsm_mgmt_util.cfg')
    await writeCmuConfig(configFile, [
      serverConfig('hsm-a', hsms[0]!.node.port, caFile),
      serverConfig('down', down, caFile),
      serverConfig('hsm-b', hsms[1]!.node.port, caFile),
      serverConfig('off', hsms[1]!.node.port, caFile, false)
    ])
    const config = await readCmuConfig(configFile)
    expect(config.servers.map(s => s.name)).toEqual(['hsm-a', 'down', 'hsm-b', 'off'])

    const reported: number[] = []
    const client = await open(config.servers, { connectTimeoutMs: 2_000, onServer: entry => { reported.push(entry.id) } })
    expect(reported).toEqual([0, 1, 2, 3])
    expect(client.servers.map(s => s.id)).toEqual([0, 1, 2, 3])
    expect(client.servers[0]!.connection?.hsmId).toBe(hsms[0]!.node.hsmId)
    expect(client.servers[2]!.connection?.hsmId).toBe(hsms[1]!.node.hsmId)
    expect(client.servers[1]!.connection).toBeUndefined()
    expect(codeOf(client.servers[1]!.error)).toBe(CLIENT_ERR_CONNECT)
    expect(codeOf(client.servers[3]!.error)).toBe(CLIENT_ERR_CONFIG)
    expect(client.connected().map(s => s.id)).toEqual([0, 2])

    const outcomes = await client.fanOut('getHsmInfo', {})
    expect(outcomes.map(o => o.server.id)).toEqual([0, 1, 2, 3])
    const answered = outcomes.map(o => o.ok ? o.result.hsmId : codeOf(o.error))
    expect(answered).toEqual([hsms[0]!.node.hsmId, CLIENT_ERR_CONNECT, hsms[1]!.node.hsmId, CLIENT_ERR_CONFIG])

    // A chosen subset, in the order asked; an unknown id is left out.
    const some = await client.fanOut('getHsmInfo', {}, [2, 0, 9])
    expect(some.map(o => o.server.id)).toEqual([2, 0])
    expect(some.every(o => o.ok)).toBe(true)

    // One call on one server: the down one throws its own error, an unknown id a config error.
    expect((await client.call(0, 'getHsmInfo', {})).hsmId).toBe(hsms[0]!.node.hsmId)
    await expect(client.call(1, 'getHsmInfo', {})).rejects.toMatchObject({ code: CLIENT_ERR_CONNECT })
    await expect(client.call(7, 'getHsmInfo', {})).rejects.toMatchObject({ code: CLIENT_ERR_CONFIG })

    // An HSM that goes down after the client connected: the other still answers.
    await hsms[1]!.node.stop()
    const later = await client.fanOut('listUsers', {})
    expect(later[0]!.ok).toBe(true)
    expect(later[2]!.ok).toBe(false)
    expect(codeOf(later[2]!.ok ? undefined : later[2]!.error)).toBe(CLIENT_ERR_CLOSED)
    expect(client.connected().map(s => s.id)).toEqual([0])
  })

  it('reports a server that does not answer in time with CLIENT_ERR_TIMEOUT, without holding up the others', async () => {
    const [hsm] = await startTestCluster(1)
    const mute = await muteHsm(hsm!.cluster)
    const caFile = await writeAnchorFile(hsm!.cluster)
    const client = await open([serverConfig('mute', mute.port, caFile), serverConfig('hsm', hsm!.node.port, caFile)])
    expect(client.connected().map((s: ServerEntry) => s.id)).toEqual([0, 1])
    const outcomes = await client.fanOut('getHsmInfo', {}, undefined, { timeoutMs: 300 })
    expect(outcomes[0]!.ok).toBe(false)
    expect(codeOf(outcomes[0]!.ok ? undefined : outcomes[0]!.error)).toBe(CLIENT_ERR_TIMEOUT)
    expect(outcomes[1]!.ok && outcomes[1]!.result.hsmId).toBe(hsm!.node.hsmId)
  })

  it('refuses a trust anchor file it cannot read, for every server that names it', async () => {
    const [hsm] = await startTestCluster(1)
    const missing = join(tmpDir('hsmlab-client-cfg-'), 'no-such-ca.crt')
    const client = await open([serverConfig('hsm', hsm!.node.port, missing)])
    expect(client.connected()).toEqual([])
    expect(codeOf(client.servers[0]!.error)).toBe(CLIENT_ERR_CONFIG)
    expect(client.servers[0]!.error?.message).toContain(missing)
  })
})
