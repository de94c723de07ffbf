/**
 * Servers for the client tests, each stopped when the test ends: real HSMs run in process through
 * @hsmlab/hsm's public face (`provisionHsm` + `startHsm`, as its README shows), a WebSocket
 * server that accepts connections and never says a word, one that completes the handshake as an
 * HSM of a cluster and then answers only what the test lets it, and a port nobody listens on.
 */
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { onTestFinished } from 'vitest'
import { WebSocketServer } from 'ws'
import type { WebSocket } from 'ws'
import { acceptHandshake, encodeTrustAnchor, generateSigningKeyPair, issueCertificate } from '@hsmlab/crypto'
import type { SecureChannel } from '@hsmlab/crypto'
import { PROTOCOL_VERSION, asHello, decode, encode } from '@hsmlab/protocol'
import { createClusterSecrets, createManufacturerKey, provisionHsm, startHsm } from '@hsmlab/hsm'
import type { ClusterSecrets, HsmNode } from '@hsmlab/hsm'
import { tmpDir } from '@hsmlab/testing'
import type { ServerConfig } from '../src/index.js'

/** A real HSM running in this process. */
export interface TestHsm {
  node: HsmNode
  cluster: ClusterSecrets
}

/**
 * Starts `count` HSMs of one new cluster (slots 0, 1, ...), each on its own data directory and
 * port; they are stopped when the test ends.
 */
export async function startTestCluster (count = 1, cluster: ClusterSecrets = createClusterSecrets()): Promise<TestHsm[]> {
  const manufacturerKey = createManufacturerKey()
  const dir = tmpDir('hsmlab-client-test-')
  const hsms: TestHsm[] = []
  for (let slot = 0; slot < count; slot++) {
    const dataDir = join(dir, `hsm-${slot}`)
    await provisionHsm({ dataDir, manufacturerKey, slot, cluster })
    const node = await startHsm({ dataDir, manufacturerKey })
    onTestFinished(async () => { await node.stop() })
    hsms.push({ node, cluster })
  }
  return hsms
}

/** Writes the cluster's trust anchor the way a CMU configuration's CAfile holds it; returns the path. */
export async function writeAnchorFile (cluster: ClusterSecrets): Promise<string> {
  const file = join(tmpDir('hsmlab-client-anchor-'), 'customerCA.crt')
  await writeFile(file, encodeTrustAnchor(cluster.anchor.publicKey))
  return file
}

/** A server entry of a configuration, for `ClusterClient.open`. */
export function serverConfig (name: string, port: number, caFile: string, enabled = true): ServerConfig {
  return { name, hostname: '127.0.0.1', port, caFile, enabled }
}

/** A port on 127.0.0.1 on which nothing listens (it was free a moment ago): connections are refused. */
export async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  const { port } = server.address() as AddressInfo
  await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  return port
}

async function listen (wss: WebSocketServer): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve)
    wss.once('error', reject)
  })
  onTestFinished(async () => {
    for (const client of wss.clients) client.terminate()
    await new Promise<void>(resolve => { wss.close(() => { resolve() }) })
  })
  return (wss.address() as AddressInfo).port
}

/** A WebSocket server that accepts every connection and never sends anything. Returns its port. */
export async function silentServer (): Promise<{ port: number, connections: () => number }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  let connections = 0
  wss.on('connection', () => { connections++ })
  return { port: await listen(wss), connections: () => connections }
}

/** One request a `muteHsm` received and has not answered. */
export interface HeldRequest {
  id: number
  op: string
  /** Answers it now (status 0, with `result`). */
  answer: (result: unknown) => void
}

/** An HSM of `cluster` that completes the handshake, then answers only when the test says so. */
export interface MuteHsm {
  port: number
  hsmId: string
  /** Requests received, in order, answered or not. */
  held: HeldRequest[]
}

/**
 * A WebSocket server that completes the client handshake with a certificate `cluster`'s anchor
 * signed, as a genuine HSM of it would, and then holds every request without answering; the
 * test answers one with `held[i].answer(result)`.
 */
export async function muteHsm (cluster: ClusterSecrets, hsmId = 'hsm-mutemutemut'): Promise<MuteHsm> {
  const keys = generateSigningKeyPair()
  const certificate = issueCertificate(cluster.anchor.secretKey, { hsmId, clusterId: cluster.clusterId, publicKey: keys.publicKey })
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  const held: HeldRequest[] = []
  wss.on('connection', (socket: WebSocket) => {
    let channel: SecureChannel | undefined
    socket.on('message', (data: Buffer) => {
      if (channel === undefined) {
        const accepted = acceptHandshake(asHello(decode(data)), keys.secretKey, certificate)
        channel = accepted.channel
        const { welcome } = accepted
        socket.send(encode({ type: 'welcome', version: PROTOCOL_VERSION, ...welcome, certificate: { ...welcome.certificate } }))
        return
      }
      const open = channel
      const request = decode(open.decrypt(data)) as { id: number, op: string }
      held.push({
        id: request.id,
        op: request.op,
        answer: result => { socket.send(open.encrypt(encode({ id: request.id, status: 0, result }))) }
      })
    })
  })
  return { port: await listen(wss), hsmId, held }
}
