/**
 * A fake cluster for CMU's unit tests: each server is a tiny in-memory HSM (users, login, keys,
 * masked objects) behind the `CmuCluster` interface, every call is recorded, and `runSession`
 * pipes a typed session into `runCmu` in-process and returns what it printed. End-to-end tests
 * (test/e2e/cmu-*.test.ts) run the real bin against real HSM processes instead.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { onTestFinished } from 'vitest'
import { ClientError, CLIENT_ERR_CLOSED, CLIENT_ERR_CONNECT } from '@hsmlab/client'
import type { HsmConnection, ServerEntry } from '@hsmlab/client'
import { ReturnCode, WireError } from '@hsmlab/protocol'
import type { HsmInfo, KeyAttribute, KeyInfo, KeyListing, OperationArgs, OperationName, OperationResult, UserInfo, UserType } from '@hsmlab/protocol'
import { runCmu } from '../src/cmu/cmu-shell.js'
import type { CmuCluster } from '../src/cmu/command.js'

interface FakeUser extends UserInfo { password: string }

/** One fake HSM. Tests may change its state or override an operation with `override`. */
export class FakeHsm {
  readonly hsmId: string
  users: FakeUser[] = [
    { userId: 1, userType: 'PRECO', userName: 'admin', password: 'password', mofnPubKey: false, loginFailureCount: 0, twoFactor: false },
    { userId: 2, userType: 'AU', userName: 'app_user', password: 'x', mofnPubKey: false, loginFailureCount: 0, twoFactor: false }
  ]

  keys = new Map<number, KeyInfo & { attributes: KeyAttribute[] }>()
  loggedIn: FakeUser | undefined
  /** Down: every call fails as a closed connection. */
  down = false
  readonly overrides = new Map<string, (args: unknown) => unknown>()

  constructor (hsmId: string) {
    this.hsmId = hsmId
  }

  override<O extends OperationName> (op: O, fn: (args: OperationArgs<O>) => OperationResult<O>): void {
    this.overrides.set(op, fn as (args: unknown) => unknown)
  }

  private find (name: string): FakeUser | undefined {
    return this.users.find(u => u.userName.toLowerCase() === name.toLowerCase())
  }

  handle (op: string, args: Record<string, unknown>): unknown {
    if (this.down) throw new ClientError(CLIENT_ERR_CLOSED, 'the connection closed')
    const override = this.overrides.get(op)
    if (override !== undefined) return override(args)
    switch (op) {
      case 'login': {
        const user = this.find(args.userName as string)
        if (user === undefined) throw new WireError(ReturnCode.USER_NOT_FOUND)
        if (this.loggedIn !== undefined) throw new WireError(ReturnCode.ALREADY_LOGGED_IN)
        if (user.password !== args.password) { user.loginFailureCount++; throw new WireError(ReturnCode.USER_LOGIN_FAILURE) }
        user.loginFailureCount = 0
        this.loggedIn = user
        return { userId: user.userId, userType: user.userType }
      }
      case 'logout':
        if (this.loggedIn === undefined) throw new WireError(ReturnCode.NOT_LOGGED_IN)
        this.loggedIn = undefined
        return {}
      case 'listUsers':
        return { users: this.users.map(({ password: _p, ...info }) => info) }
      case 'createUser': {
        if (this.find(args.userName as string) !== undefined) throw new WireError(ReturnCode.USER_ALREADY_EXISTS)
        const userId = Math.max(...this.users.map(u => u.userId)) + 1
        this.users.push({ userId, userType: args.userType as UserType, userName: args.userName as string, password: args.password as string, mofnPubKey: false, loginFailureCount: 0, twoFactor: false })
        return { userId }
      }
      case 'deleteUser': {
        const user = this.find(args.userName as string)
        if (user === undefined) throw new WireError(ReturnCode.USER_NOT_FOUND)
        this.users = this.users.filter(u => u !== user)
        return {}
      }
      case 'changePassword': {
        const user = this.find(args.userName as string)
        if (user === undefined) throw new WireError(ReturnCode.USER_NOT_FOUND)
        user.password = args.password as string
        if (user.userType === 'PRECO') user.userType = 'CO'
        return { userType: user.userType }
      }
      case 'getHsmInfo': {
        const info: HsmInfo = {
          hsmId: this.hsmId, clusterId: 'cluster-abcdefghijk', lineage: 'l', label: 'cavium', model: 'NITROX-III CNN35XX-NFBE',
          serialNumber: '3.0A0101-ICM000001', firmwareVersion: '2.3.13', fipsState: 2, totalTokenObjects: 3300, freeTokenObjects: 3290,
          userCount: this.users.length, keyCount: this.keys.size
        }
        if (this.loggedIn !== undefined) info.loggedInAs = { userName: this.loggedIn.userName, userType: this.loggedIn.userType }
        return info
      }
      case 'getCertificate':
        return { pem: `-----BEGIN CERTIFICATE-----\n${this.hsmId} ${String(args.certType)}\n-----END CERTIFICATE-----\n` }
      case 'findAllKeys': {
        const userId = args.userId as number
        const keys: KeyListing[] = []
        for (const key of this.keys.values()) {
          if (key.owner === userId) keys.push({ handle: key.handle, relation: key.keyClass === 2 ? 'public' : 'owned' })
          else if (key.sharedWith.includes(userId)) keys.push({ handle: key.handle, relation: 'shared' })
        }
        const result: OperationResult<'findAllKeys'> = { keys }
        if (args.withHash === true && keys.length > 0) result.hash = 'ab'.repeat(32)
        return result
      }
      case 'getKeyInfo': {
        const key = this.keys.get(args.handle as number)
        if (key === undefined) throw new WireError(ReturnCode.INVALID_HANDLE)
        const { attributes: _a, ...info } = key
        return info
      }
      case 'getAttribute': {
        const key = this.keys.get(args.handle as number)
        if (key === undefined) throw new WireError(ReturnCode.INVALID_HANDLE)
        const attributes = args.attribute === 512 ? key.attributes : key.attributes.filter(a => a.id === args.attribute)
        if (attributes.length === 0) throw new WireError(ReturnCode.INVALID_ATTRIBUTE)
        return { attributes }
      }
      case 'setAttribute':
      case 'shareKey':
        if (!this.keys.has(args.handle as number)) throw new WireError(ReturnCode.INVALID_HANDLE)
        return {}
      case 'extractMaskedObject': {
        if (this.loggedIn === undefined) throw new WireError(ReturnCode.NOT_LOGGED_IN)
        if (args.kind === 'user') {
          const user = this.users.find(u => u.userId === args.userId)
          if (user === undefined) throw new WireError(ReturnCode.USER_NOT_FOUND)
          return { blob: new TextEncoder().encode(JSON.stringify({ kind: 'user', user })) }
        }
        const key = this.keys.get(args.handle as number)
        if (key === undefined) throw new WireError(ReturnCode.INVALID_HANDLE)
        return { blob: new TextEncoder().encode(JSON.stringify({ kind: 'key', key })) }
      }
      case 'insertMaskedObject': {
        if (this.loggedIn === undefined) throw new WireError(ReturnCode.NOT_LOGGED_IN)
        const object = JSON.parse(new TextDecoder().decode(args.blob as Uint8Array)) as { kind: string, user?: FakeUser, key?: KeyInfo & { attributes: KeyAttribute[] } }
        if (object.user !== undefined) {
          const existing = this.find(object.user.userName)
          this.users = this.users.filter(u => u !== existing)
          const userId = existing?.userId ?? Math.max(...this.users.map(u => u.userId)) + 1
          this.users.push({ ...object.user, userId })
          this.users.sort((a, b) => a.userId - b.userId)
          return { kind: 'user', userId }
        }
        const key = object.key as KeyInfo & { attributes: KeyAttribute[] }
        const handle = this.keys.has(key.handle) ? Math.max(...this.keys.keys()) + 1 : key.handle
        this.keys.set(handle, { ...key, handle })
        return { kind: 'key', handle }
      }
      default:
        throw new WireError(ReturnCode.UNKNOWN_OPERATION)
    }
  }
}

/** A recorded call. */
export interface RecordedCall { serverId: number, op: string, args: unknown }

/** A fake cluster of `hsms`; `null` stands for a server that could not be connected at start-up. */
export function fakeCluster (hsms: Array<FakeHsm | null>, names?: string[]): CmuCluster & { calls: RecordedCall[] } {
  const calls: RecordedCall[] = []
  const servers: ServerEntry[] = hsms.map((hsm, id) => {
    const name = names?.[id] ?? `10.0.0.${id + 1}`
    const config = { name, hostname: name, port: 2225, caFile: '/dev/null', enabled: true }
    if (hsm === null) {
      const cause = Object.assign(new Error(`connect ECONNREFUSED ${name}:2225`), { code: 'ECONNREFUSED' })
      return { id, config, error: new ClientError(CLIENT_ERR_CONNECT, `cannot connect to ws://${name}:2225`, { cause }) }
    }
    const connection = { get closed () { return hsm.down }, hsmId: hsm.hsmId } as unknown as HsmConnection
    return { id, config, connection }
  })
  return {
    servers,
    calls,
    async call (serverId, op, args) {
      calls.push({ serverId, op, args })
      const hsm = hsms[serverId]
      if (hsm === null || hsm === undefined) throw new ClientError(CLIENT_ERR_CLOSED, `server ${serverId} is not connected`)
      return hsm.handle(op, args as Record<string, unknown>) as never
    },
    async close () {}
  }
}

/** A configuration file naming `count` servers, in a directory removed after the test. */
export function tmpConfig (count: number): { dir: string, path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'hsmlab-cmu-'))
  onTestFinished(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'cloudhsm_mgmt_util.cfg')
  const servers = Array.from({ length: count }, (_, i) => ({ hostname: `10.0.0.${i + 1}`, name: `10.0.0.${i + 1}`, port: 2225, CAfile: 'customerCA.crt' }))
  writeFileSync(path, JSON.stringify({ servers }))
  return { dir, path }
}

/** What a piped session printed. */
export interface SessionResult { out: string, err: string, code: number, calls: RecordedCall[] }

/** Pipes `input` into runCmu over a fake cluster of `hsms` and returns everything it wrote. */
export async function runSession (hsms: Array<FakeHsm | null>, input: string, options: { argv?: string[], names?: string[] } = {}): Promise<SessionResult> {
  const cluster = fakeCluster(hsms, options.names)
  const { path } = tmpConfig(hsms.length)
  const output = new PassThrough()
  const errorOutput = new PassThrough()
  let out = ''
  let err = ''
  output.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  errorOutput.setEncoding('utf8').on('data', (chunk: string) => { err += chunk })
  const code = await runCmu(options.argv ?? [path], { input: Readable.from([input]), output, terminal: false }, {
    errorOutput,
    env: {},
    openCluster: async (_servers, clusterOptions) => {
      for (const entry of cluster.servers) clusterOptions.onServer?.(entry)
      return cluster
    }
  })
  return { out, err, code, calls: cluster.calls }
}

/** The start-up trace of `count` connected fake servers, as runSession prints it. */
export function connectedTrace (count: number): string {
  let text = 'Connecting to the server(s), it may take time\ndepending on the server(s) load, please wait...\n'
  for (let i = 1; i <= count; i++) {
    text += `\nConnecting to server '10.0.0.${i}': hostname '10.0.0.${i}', port 2225...\nConnected to server '10.0.0.${i}': hostname '10.0.0.${i}', port 2225.\n`
  }
  return text
}
