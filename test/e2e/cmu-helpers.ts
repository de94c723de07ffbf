/**
 * Helpers of the CMU end-to-end tests: real HSM processes of one cluster (provisioned in a
 * temporary directory, started with the `hsmlab-hsm` bin on port 0), CMU configurations naming
 * them, and the real `cloudhsm_mgmt_util` bin run as a child process with a session piped in.
 * Every process is killed when the test ends (spawnNode registers it), also when the test fails.
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeCmuConfig } from '@hsmlab/client'
import { encodeTrustAnchor } from '@hsmlab/crypto'
import type { SigningKeyPair } from '@hsmlab/crypto'
import { HSM_BIN_PATH, createClusterSecrets, createManufacturerKey, provisionHsm, writeManufacturerKey } from '@hsmlab/hsm'
import { spawnNode, tmpDir, waitFor } from '@hsmlab/testing'
import type { SpawnedProcess } from '@hsmlab/testing'

/** What CMU prints for a critical operation answered `y`, as the guide shows it. */
export const CAUTION_ANSWERED_Y = [
  '*************************CAUTION********************************',
  'This is a CRITICAL operation, should be done on all nodes in the',
  'cluster. AWS does NOT synchronize these changes automatically with the',
  'nodes on which this operation is not executed or failed, please',
  'ensure this operation is executed on all nodes in the cluster.',
  '****************************************************************',
  '',
  'Do you want to continue(y/n)?y'
].join('\n') + '\n'

/** The committed launcher of the CMU bin, as a user runs it. */
export const CMU_BIN = fileURLToPath(new URL('../../packages/shells/bin/cloudhsm_mgmt_util.js', import.meta.url))

/** One running HSM process. */
export interface RunningHsm {
  hsmId: string
  port: number
  process: SpawnedProcess
}

/** A cluster of running HSMs and where its files are. */
export interface TestCluster {
  dir: string
  anchorFile: string
  /** The trust anchor's key pair, for what the control plane signs (setSyncRole). */
  anchor: SigningKeyPair
  hsms: RunningHsm[]
  /** Writes a CMU configuration naming these HSMs (by index, in this order) and returns its path. */
  cmuConfig: (indexes?: number[], file?: string) => Promise<string>
}

/** Provisions and starts `count` HSMs of one new cluster. */
export async function startCluster (count: number): Promise<TestCluster> {
  const dir = tmpDir('hsmlab-cmu-e2e-')
  const manufacturerKey = createManufacturerKey()
  const keyFile = join(dir, 'manufacturer.key')
  await writeManufacturerKey(keyFile, manufacturerKey)
  const cluster = createClusterSecrets()
  const anchorFile = join(dir, 'customerCA.crt')
  await writeFile(anchorFile, encodeTrustAnchor(cluster.anchor.publicKey))
  const hsms = await Promise.all(Array.from({ length: count }, async (_, slot): Promise<RunningHsm> => {
    const dataDir = join(dir, `hsm-${slot}`)
    const { hsmId } = await provisionHsm({ dataDir, manufacturerKey, slot, cluster, syncWrites: false })
    const child = spawnNode(HSM_BIN_PATH, ['--data-dir', dataDir, '--manufacturer-key-file', keyFile, '--port', '0'], { name: `hsm-${slot}` })
    const ready = await waitFor(() => {
      const line = child.stdout().split('\n').find(l => l.includes('"ready"'))
      return line === undefined ? undefined : JSON.parse(line) as { port: number }
    }, { timeoutMs: 15_000, what: `hsm-${slot} ready line` })
    return { hsmId, port: ready.port, process: child }
  }))
  return {
    dir,
    anchorFile,
    anchor: cluster.anchor,
    hsms,
    async cmuConfig (indexes = hsms.map((_, i) => i), file = join(dir, `cmu-${indexes.join('-')}.cfg`)) {
      await writeCmuConfig(file, indexes.map(i => {
        const port = hsms[i]?.port ?? 1
        return { name: `hsm${i}`, hostname: '127.0.0.1', port, caFile: anchorFile, enabled: true }
      }))
      return file
    }
  }
}

/** How a CMU run ended. */
export interface CmuRun { code: number | string, stdout: string, stderr: string }

/** Runs the CMU bin with `input` piped to its standard input until it exits. */
export async function runCmuBin (args: string[], input: string, options: { timeoutMs?: number, env?: NodeJS.ProcessEnv } = {}): Promise<CmuRun> {
  const cmu = spawnNode(CMU_BIN, args, { name: 'cloudhsm_mgmt_util', env: options.env })
  cmu.child.stdin.end(input)
  const code = await waitFor(async () => await Promise.race([cmu.exited, Promise.resolve(undefined)]), {
    timeoutMs: options.timeoutMs ?? 60_000, what: 'cloudhsm_mgmt_util to exit'
  })
  return { code, stdout: cmu.stdout(), stderr: cmu.stderr() }
}

/** Starts the CMU bin for a session typed line by line (`type`), waiting on its output in between. */
export function startCmuBin (args: string[], options: { env?: NodeJS.ProcessEnv } = {}): {
  process: SpawnedProcess
  type: (line: string) => void
  waitForOutput: (text: string, from?: number) => Promise<number>
} {
  const cmu = spawnNode(CMU_BIN, args, { name: 'cloudhsm_mgmt_util', env: options.env })
  return {
    process: cmu,
    type: line => { cmu.write(`${line}\n`) },
    async waitForOutput (text, from = 0) {
      return await waitFor(() => {
        const at = cmu.stdout().indexOf(text, from)
        return at >= 0 ? at + text.length : undefined
      }, { timeoutMs: 30_000, what: `CMU output ${JSON.stringify(text)}` })
    }
  }
}

/** The start-up trace CMU prints for servers `hsm<i>` on 127.0.0.1 that all connect. */
export function startupTrace (hsms: ReadonlyArray<{ port: number }>, indexes = hsms.map((_, i) => i)): string {
  let text = 'Connecting to the server(s), it may take time\ndepending on the server(s) load, please wait...\n'
  for (const i of indexes) {
    const port = hsms[i]?.port ?? 0
    text += `\nConnecting to server 'hsm${i}': hostname '127.0.0.1', port ${port}...\nConnected to server 'hsm${i}': hostname '127.0.0.1', port ${port}.\n`
  }
  return text
}

/** The listUsers section of one server, rows given as [id, type, name, failures, MofnPubKey, 2FA]. */
export function usersSection (label: string, rows: Array<[number, string, string, number?, boolean?, boolean?]>): string {
  const header = '    User Id             User Type       User Name                          MofnPubKey    LoginFailureCnt         2FA'
  const yesNo = (flag: boolean): string => flag ? 'YES' : 'NO'
  const lines = rows.map(([id, type, name, failures = 0, mofn = false, twoFactor = false]) =>
    String(id).padStart(10) + ' '.repeat(14) + type.padEnd(16) + name.padEnd(32) + yesNo(mofn).padStart(11) + String(failures).padStart(16) + yesNo(twoFactor).padStart(17))
  return [`Users on ${label}:`, `Number of users found:${rows.length}`, '', header, ...lines].join('\n') + '\n'
}

/** Runs openssl in `dir`, as the guide's quorum and 2FA pages do. */
export function openssl (dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
}

/** An officer's RSA-2048 key pair and signed registration token, made as the guide makes them. */
export function makeOfficerKey (dir: string, name: string): void {
  openssl(dir, 'genrsa', '-out', `${name}.key`, '2048')
  openssl(dir, 'rsa', '-in', `${name}.key`, '-outform', 'PEM', '-pubout', '-out', `${name}.pub`)
  writeFileSync(join(dir, `${name}.token`), 'token to be signed\n')
  openssl(dir, 'dgst', '-sha256', '-sign', `${name}.key`, '-out', `${name}.token.sig`, `${name}.token`)
}
