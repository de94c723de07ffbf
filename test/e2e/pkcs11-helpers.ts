/**
 * Helpers of the issue-16 tests: the PKCS#11 library built from its source (the workspace's build
 * step, `npm run build -w @hsmlab/pkcs11`, run here when the library is missing or older than its
 * source), a lab with two crypto users, and the real clients (OpenSC's pkcs11-tool, openssl,
 * p11tool, java) run to their end with the environment `hsmlab status --json` gives.
 */
import { execFileSync } from 'node:child_process'
import { statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
import { spawnProcess, startLab } from '@hsmlab/testing'
import type { LabStatusCluster, StartedLab } from '@hsmlab/testing'

export const PKCS11_LIBRARY: string = fileURLToPath(new URL('../../packages/pkcs11/build/libhsmlab_pkcs11.so', import.meta.url))
const PKCS11_SOURCE: string = fileURLToPath(new URL('../../packages/pkcs11/src/hsmlab_pkcs11.c', import.meta.url))

/** Builds libhsmlab_pkcs11.so unless it is newer than its source. */
export function ensurePkcs11Library (): string {
  const mtime = (path: string): number => { try { return statSync(path).mtimeMs } catch { return 0 } }
  if (mtime(PKCS11_LIBRARY) < mtime(PKCS11_SOURCE)) {
    execFileSync('npm', ['run', 'build', '-w', '@hsmlab/pkcs11'], { cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: 'pipe' })
  }
  return PKCS11_LIBRARY
}

/** The CKR_ name a pkcs11js call throws (its message starts with it), or CKR_OK. */
export function rvOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return (err as Error).message.split(':')[0] ?? ''
  }
  return 'CKR_OK'
}

export const ALICE_PIN = 'alice:Alice1234'
export const BOB_PIN = 'bob:Bob12345'

/** One region, one cluster of 2 HSMs, crypto users alice and bob. */
export const TWO_USERS_TOPOLOGY = {
  regions: [{
    name: 'us-east-1',
    clusters: [{
      name: 'apps',
      hsms: 2,
      activate: { admin: 'Admin1234' },
      users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }, { type: 'CU', name: 'bob', password: 'Bob12345' }]
    }]
  }]
}

/** What `hsmlab status --json` says of a cluster's client daemon. */
export interface ClientStatusJson {
  socket: string
  pkcs11Module: string
  env: Record<string, string>
  pid: number | null
  state: string
}

export function clientOf (cluster: LabStatusCluster | undefined): ClientStatusJson {
  const client = cluster?.client as ClientStatusJson | undefined
  if (client === undefined) throw new Error('hsmlab status --json gave no client for the cluster')
  return client
}

/** A lab (TWO_USERS_TOPOLOGY unless given), the library built, and the first cluster's client status. */
export async function startPkcs11Lab (args: string[] = [], topology: object = TWO_USERS_TOPOLOGY): Promise<{ lab: StartedLab, cluster: LabStatusCluster, client: ClientStatusJson, env: NodeJS.ProcessEnv }> {
  ensurePkcs11Library()
  const lab = await startLab({ topology, args })
  const cluster = lab.status.regions[0]?.clusters[0]
  if (cluster === undefined) throw new Error('no cluster')
  const client = clientOf(cluster)
  return { lab, cluster, client, env: { ...process.env, ...client.env } }
}

/** How one run of a program ended. */
export interface ToolRun { code: number | string, out: string, err: string }

/** Runs a program to its end with `env`; never throws for a non-zero exit. */
export async function run (command: string, args: string[], env: NodeJS.ProcessEnv, input?: string, cwd?: string): Promise<ToolRun> {
  const child = spawnProcess(command, args, { env, name: command, ...(cwd === undefined ? {} : { cwd }) })
  // A program that exits without reading its input (openssl) must not fail the test with EPIPE.
  child.child.stdin.on('error', () => {})
  child.child.stdin.end(input ?? '')
  const code = await child.exited
  return { code, out: child.stdout(), err: child.stderr() }
}

/** `pkcs11-tool --module <the library> ARGS`, expected to succeed. */
export async function pkcs11Tool (args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const r = await run('pkcs11-tool', ['--module', PKCS11_LIBRARY, ...args], env)
  expect(r.code, `pkcs11-tool ${args.join(' ')}\n${r.out}\n${r.err}`).toBe(0)
  return r.out + r.err
}
