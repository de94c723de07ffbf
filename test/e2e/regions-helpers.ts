/**
 * Helpers of the end-to-end tests on a lab (`regions-*.test.ts`, `faults-*.test.ts`): CMU
 * configurations naming chosen HSMs of a lab (each with its own cluster's trust anchor, as
 * `writeCmuConfig` writes them), the real CMU and KMU bins run to their end, readers of what they
 * print (findAllKeys counts and hashes, listUsers names, KMU key handles), `hsmlab fault`, and
 * client-library sessions on one HSM. Every process and connection is closed when the test ends.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect, onTestFinished } from 'vitest'
import { HsmConnection, writeCmuConfig } from '@hsmlab/client'
import { decodeTrustAnchor } from '@hsmlab/crypto'
import type { LabStatusCluster, LabStatusHsm, LabStatusJson, StartedLab } from '@hsmlab/testing'
import { runCmuBin } from './cmu-helpers.js'
import { kmuOnce, numberAfter } from './kmu-driver.js'

/** The cluster `region/name` of a lab status; throws when it has none. */
export function clusterOf (status: LabStatusJson, region: string, name: string): LabStatusCluster {
  const cluster = status.regions.find(r => r.name === region)?.clusters.find(c => c.name === name)
  if (cluster === undefined) throw new Error(`no cluster ${region}/${name} in the status`)
  return cluster
}

/** The address CMU prints for an HSM (`server N(<this>)`): the host of its endpoint. */
export function hostOf (hsm: Pick<LabStatusHsm, 'endpoint'>): string {
  return new URL(hsm.endpoint).hostname
}

/** The trust anchor file of a lab cluster (`hsmlab status --json` names it). */
export function anchorOf (cluster: LabStatusCluster): string {
  if (typeof cluster.trustAnchor !== 'string') throw new Error(`cluster ${cluster.name} has no trust anchor file in the status`)
  return cluster.trustAnchor
}

/** Runs `hsmlab fault ARGS` on the lab, which must succeed; resolves with what it printed. */
export async function fault (lab: StartedLab, args: string[]): Promise<string> {
  const run = await lab.hsmlab(['fault', ...args])
  expect(run.code, run.stderr).toBe(0)
  return run.stdout
}

/**
 * A client-library session on the HSM at `url` (an HSM of `cluster`: its client link, or its
 * `directEndpoint`), logged in as `user`; closed when the test ends.
 */
export async function sessionOn (cluster: LabStatusCluster, url: string, user: { type: 'CO' | 'CU', name: string, password: string }): Promise<{ connection: HsmConnection, userId: number }> {
  const trustAnchor = decodeTrustAnchor(readFileSync(anchorOf(cluster), 'utf8'))
  const connection = await HsmConnection.connect({ url, trustAnchor, expectedClusterId: cluster.id })
  onTestFinished(async () => { await connection.close() })
  const { userId } = await connection.call('login', { userType: user.type, userName: user.name, password: user.password })
  return { connection, userId }
}

/**
 * Writes a CMU (and KMU) configuration `file` in `dir` listing these HSMs in this order (server
 * 0, 1, ...), each with its own cluster's trust anchor; the name CMU prints is the HSM's address,
 * as the real `configure` writes it.
 */
export async function configFor (dir: string, file: string, hsms: Array<{ cluster: LabStatusCluster, hsm: Pick<LabStatusHsm, 'endpoint'> }>): Promise<string> {
  const path = join(dir, file)
  await writeCmuConfig(path, hsms.map(({ cluster, hsm }) => {
    const url = new URL(hsm.endpoint)
    return { name: hostOf(hsm), hostname: hostOf(hsm), port: Number(url.port), caFile: anchorOf(cluster), enabled: true }
  }))
  return path
}

/** Runs a CMU session (one command or answer a line) with `config`; resolves with what it printed. */
export async function cmu (config: string, session: string[]): Promise<string> {
  const run = await runCmuBin([config], session.map(l => `${l}\n`).join(''))
  expect(run.code, run.stderr).toBe(0)
  return run.stdout
}

/** Runs `key_mgmt_util --config CONFIG singlecmd loginHSM -u CU -s USER -p PASSWORD COMMAND...`; resolves with its output. */
export async function kmuAs (cwd: string, config: string, user: [string, string], command: string[]): Promise<string> {
  const run = await kmuOnce(cwd, ['--config', config, 'singlecmd', 'loginHSM', '-u', 'CU', '-s', user[0], '-p', user[1], ...command])
  expect(run.code, `${run.out}\n${run.err}`).toBe(0)
  return run.out
}

/** Makes a 32-byte AES token key labelled `label` as crypto user `user` on the HSMs of `config`; resolves with its handle. */
export async function makeKey (cwd: string, config: string, user: [string, string], label: string): Promise<number> {
  return numberAfter(await kmuAs(cwd, config, user, ['genSymKey', '-t', '31', '-s', '32', '-l', label]), 'Key Handle:')
}

/** The handles KMU's `findKey -l LABEL` lists for crypto user `user` on the first HSM of `config`. */
export async function handlesLabelled (cwd: string, config: string, user: [string, string], label: string): Promise<number[]> {
  const out = await kmuAs(cwd, config, user, ['findKey', '-l', label])
  const count = numberAfter(out, 'Total number of keys present')
  if (count === 0) return []
  const list = /number of keys matched from start index 0::\d+\n([\d, ]+)\n/.exec(out)?.[1]
  if (list === undefined) throw new Error(`findKey printed ${count} keys but no handle list:\n${out}`)
  return list.split(', ').map(Number)
}

/** Per server of a CMU output's findAllKeys: how many keys, which handles, and their hash (none without keys). */
export function keyHashes (stdout: string): Map<number, { count: number, handles: number[], hash?: string }> {
  const out = new Map<number, { count: number, handles: number[], hash?: string }>()
  for (const section of stdout.split(/(?=Keys on server \d+\()/).slice(1)) {
    const server = Number(/^Keys on server (\d+)\(/.exec(section)?.[1])
    const count = Number(/Number of keys found (\d+)/.exec(section)?.[1])
    const list = /number of keys matched from start index 0::\d+\n(.*)\n/.exec(section)?.[1] ?? ''
    const handles = list === '' ? [] : list.split(',').map(h => Number(h.replace(/\(.\)$/, '')))
    const hash = /Key Hash:\n([0-9a-f]+)\n/.exec(section)?.[1]
    out.set(server, hash === undefined ? { count, handles } : { count, handles, hash })
  }
  return out
}

/** Per server of a CMU output's listUsers: the rows as `id type name`. */
export function userRows (stdout: string): Map<number, string[]> {
  const out = new Map<number, string[]>()
  for (const section of stdout.split(/(?=Users on server \d+\()/).slice(1)) {
    const server = Number(/^Users on server (\d+)\(/.exec(section)?.[1])
    out.set(server, [...section.matchAll(/^\s+(\d+)\s+(CO|CU|AU|PCO|PRECO)\s+(\S+)/gm)].map(m => `${m[1] ?? ''} ${m[2] ?? ''} ${m[3] ?? ''}`))
  }
  return out
}

/** What CMU printed for the command line `line` (from its echo to the next prompt). */
export function outputOf (stdout: string, line: string): string {
  const at = stdout.indexOf(`>${line}\n`)
  if (at === -1) throw new Error(`CMU did not run '${line}':\n${stdout}`)
  const start = at + line.length + 2
  const next = /(?:aws-cloudhsm|server ?\d+)>/g
  next.lastIndex = start
  const end = next.exec(stdout)?.index ?? stdout.length
  return stdout.slice(start, end)
}
