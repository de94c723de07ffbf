/**
 * Helpers of the HSM tests: provision a data directory, run the built `hsmlab-hsm` on it (port 0,
 * ready line read from stdout), connect with the client library, and a raw WebSocket client for
 * sending what a well-behaved client never would. Everything is released when the test ends.
 */
import { join } from 'node:path'
import { expect, onTestFinished } from 'vitest'
import WebSocket from 'ws'
import { HsmConnection } from '@hsmlab/client'
import { ClientHandshake } from '@hsmlab/crypto'
import type { SecureChannel } from '@hsmlab/crypto'
import { PROTOCOL_VERSION, ReturnCode, asResponse, asWelcome, decode, encode } from '@hsmlab/protocol'
import type { ResponseFrame, ReturnCodeKey } from '@hsmlab/protocol'
import { spawnNode, tmpDir, waitFor } from '@hsmlab/testing'
import type { SpawnedProcess } from '@hsmlab/testing'
import {
  HSM_BIN_PATH, createClusterSecrets, createManufacturerKey, provisionHsm, writeManufacturerKey
} from '../src/index.js'
import type { ClusterSecrets } from '../src/index.js'

/** A provisioned, not yet running, HSM. */
export interface ProvisionedTestHsm {
  dataDir: string
  keyFile: string
  manufacturerKey: Uint8Array
  cluster: ClusterSecrets
  hsmId: string
}

/** The ready line of `hsmlab-hsm`. */
export interface ReadyLine {
  event: 'ready'
  pid: number
  hsmId: string
  host: string
  port: number
}

/** A running `hsmlab-hsm` process. */
export interface RunningTestHsm extends ProvisionedTestHsm {
  proc: SpawnedProcess
  ready: ReadyLine
  url: string
}

/** A fresh data directory with a new cluster's HSM in it, and its manufacturer key file. */
export async function provisionTestHsm (slot = 0): Promise<ProvisionedTestHsm> {
  const dir = tmpDir('hsmlab-hsm-test-')
  const manufacturerKey = createManufacturerKey()
  const keyFile = join(dir, 'manufacturer.key')
  await writeManufacturerKey(keyFile, manufacturerKey)
  const cluster = createClusterSecrets()
  const dataDir = join(dir, 'hsm')
  const { hsmId } = await provisionHsm({ dataDir, manufacturerKey, slot, cluster })
  return { dataDir, keyFile, manufacturerKey, cluster, hsmId }
}

/** Starts `hsmlab-hsm` (without waiting for it). */
export function spawnHsm (hsm: Pick<ProvisionedTestHsm, 'dataDir' | 'keyFile'>, extraArgs: string[] = []): SpawnedProcess {
  return spawnNode(HSM_BIN_PATH, ['--data-dir', hsm.dataDir, '--manufacturer-key-file', hsm.keyFile, '--port', '0', ...extraArgs], { name: 'hsmlab-hsm' })
}

/** Waits for the ready line; fails at once if the process exits first. */
export async function readReadyLine (proc: SpawnedProcess): Promise<ReadyLine> {
  let exit: number | string | undefined
  void proc.exited.then(code => { exit = code })
  const line = await waitFor(() => {
    if (exit !== undefined) throw new Error(`hsmlab-hsm exited with ${exit} before it was ready: ${proc.stderr()}`)
    const first = proc.stdout().split('\n')[0]
    return proc.stdout().includes('\n') && first !== undefined ? first : undefined
  }, { what: 'the ready line of hsmlab-hsm', timeoutMs: 15_000 })
  return JSON.parse(line) as ReadyLine
}

/** Starts `hsmlab-hsm` on a provisioned directory and waits until it is ready. */
export async function runHsm (hsm: ProvisionedTestHsm, extraArgs: string[] = []): Promise<RunningTestHsm> {
  const proc = spawnHsm(hsm, extraArgs)
  const ready = await readReadyLine(proc)
  return { ...hsm, proc, ready, url: `ws://${ready.host}:${ready.port}` }
}

/** Provisions and runs a new cluster's HSM. */
export async function startTestHsm (): Promise<RunningTestHsm> {
  return await runHsm(await provisionTestHsm())
}

/** A client connection, closed when the test ends. */
export async function connect (hsm: Pick<RunningTestHsm, 'url' | 'cluster'>): Promise<HsmConnection> {
  const conn = await HsmConnection.connect({ url: hsm.url, trustAnchor: hsm.cluster.anchor.publicKey, expectedClusterId: hsm.cluster.clusterId })
  onTestFinished(async () => { await conn.close() })
  return conn
}

/** A connection logged in as the given user. */
export async function loginAs (hsm: Pick<RunningTestHsm, 'url' | 'cluster'>, userType: 'CO' | 'CU' | 'PRECO' | 'PCO', userName: string, password: string): Promise<HsmConnection> {
  const conn = await connect(hsm)
  await conn.call('login', { userType, userName, password })
  return conn
}

/** A connection logged in as the CO `admin` of an activated cluster (password `officer1pw`). */
export async function activate (hsm: Pick<RunningTestHsm, 'url' | 'cluster'>, password = 'officer1pw'): Promise<HsmConnection> {
  const conn = await loginAs(hsm, 'PRECO', 'admin', 'password')
  await conn.call('changePassword', { userType: 'PRECO', userName: 'admin', password })
  return conn
}

/** Expects `promise` to fail with the return code `key` (a WireError). */
export async function expectCode (promise: Promise<unknown>, key: ReturnCodeKey): Promise<void> {
  const info = ReturnCode[key]
  await expect(promise).rejects.toMatchObject({ code: info.name, status: info.code })
}

/** A WebSocket client that does the handshake and then sends whatever the test wants. */
export interface RawClient {
  socket: WebSocket
  channel: SecureChannel
  /** Encrypts and sends a MessagePack-encoded value. */
  sendValue: (value: unknown) => void
  /** Encrypts and sends bytes as they are. */
  sendPlain: (bytes: Uint8Array) => void
  /** Sends bytes without encrypting them. */
  sendRaw: (bytes: Uint8Array) => void
  /** The next response, decrypted. */
  next: () => Promise<ResponseFrame>
  /** Resolves when the server closed the socket. */
  closed: Promise<number>
}

/** Opens a WebSocket to the HSM without the handshake; messages are collected as they come. */
export async function openSocket (url: string, options: { autoPong?: boolean } = {}): Promise<{ socket: WebSocket, messages: Uint8Array[], nextMessage: () => Promise<Uint8Array>, closed: Promise<number> }> {
  const socket = new WebSocket(url, { perMessageDeflate: false, ...options })
  onTestFinished(() => { socket.terminate() })
  const messages: Uint8Array[] = []
  let waiting: ((m: Uint8Array) => void) | undefined
  socket.on('message', data => {
    const bytes = new Uint8Array(data as Buffer)
    if (waiting !== undefined) { const w = waiting; waiting = undefined; w(bytes) } else messages.push(bytes)
  })
  const closed = new Promise<number>(resolve => { socket.on('close', code => { resolve(code) }) })
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => { resolve() })
    socket.once('error', reject)
  })
  const nextMessage = async (): Promise<Uint8Array> => {
    const queued = messages.shift()
    if (queued !== undefined) return queued
    return await new Promise<Uint8Array>((resolve, reject) => {
      waiting = resolve
      void closed.then(code => { reject(new Error(`socket closed (${code}) before a message came`)) })
    })
  }
  return { socket, messages, nextMessage, closed }
}

/** A raw client past the handshake, checked against the cluster's trust anchor. */
export async function rawConnect (url: string, anchorPublicKey: Uint8Array, options: { autoPong?: boolean } = {}): Promise<RawClient> {
  const { socket, nextMessage, closed } = await openSocket(url, options)
  const handshake = new ClientHandshake()
  socket.send(encode({ type: 'hello', version: PROTOCOL_VERSION, ...handshake.hello }))
  const channel = handshake.finish(asWelcome(decode(await nextMessage())), anchorPublicKey)
  return {
    socket,
    channel,
    sendValue: value => { socket.send(channel.encrypt(encode(value))) },
    sendPlain: bytes => { socket.send(channel.encrypt(bytes)) },
    sendRaw: bytes => { socket.send(bytes) },
    next: async () => asResponse(decode(channel.decrypt(await nextMessage()))),
    closed
  }
}
