/**
 * What `hsmlab up` and `hsmlab status` print for a person: the summary after `up` (where the lab
 * is, its HSMs, the credentials and the command lines to type next) and the status table.
 */
import { isAbsolute, join, relative } from 'node:path'
import { DEFAULT_ADMIN_NAME, DEFAULT_ADMIN_PASSWORD } from '@hsmlab/hsm'
import { labDefaults } from './defaults.js'
import type { ClusterStatus, LabDownResult, LabStatus, LabUpResult } from './lab.js'
import type { Topology, TopologyCluster } from './topology.js'

/** `path` relative to `cwd` when it lies inside it (shorter to type), else absolute. */
export function displayPath (path: string, cwd: string): string {
  const rel = relative(cwd, path)
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path
}

function table (rows: string[][], indent: string): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length) })
  return rows.map(row => indent + row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)).join('  '))
}

function hsmRows (cluster: ClusterStatus): string[][] {
  return [
    ['SERVER', 'NAME', 'HSM', 'STATE', 'PID', 'ENDPOINT'],
    ...cluster.hsms.map(h => [String(h.server), h.name, h.id, h.state, h.pid === null ? '-' : String(h.pid), h.endpoint])
  ]
}

function specOf (topology: Topology, cluster: ClusterStatus): TopologyCluster | undefined {
  return topology.regions.find(r => r.name === cluster.region)?.clusters.find(c => c.name === cluster.name)
}

function credentials (spec: TopologyCluster | undefined, cluster: ClusterStatus): string {
  if (spec?.activate === undefined && !cluster.activated) {
    return `PRECO ${DEFAULT_ADMIN_NAME} / ${DEFAULT_ADMIN_PASSWORD} (not activated: loginHSM PRECO ${DEFAULT_ADMIN_NAME} ${DEFAULT_ADMIN_PASSWORD}, then changePswd PRECO ${DEFAULT_ADMIN_NAME} <new password>)`
  }
  if (spec?.activate === undefined) return `activated by hand: CO ${DEFAULT_ADMIN_NAME} / the password it was given`
  return [`CO ${DEFAULT_ADMIN_NAME} / ${spec.activate.admin}`, ...spec.users.map(u => `${u.type} ${u.name} / ${u.password}`)].join(', ')
}

/** The `--dir` flag to repeat in printed commands, or '' for the default lab directory. */
function dirFlag (dir: string, cwd: string): string {
  return dir === join(cwd, labDefaults.dir) ? '' : ` --dir ${displayPath(dir, cwd)}`
}

/** What `hsmlab up` prints once the lab is ready. */
export function formatUpSummary (result: LabUpResult, cwd: string): string {
  const { status, topology } = result
  const lines: string[] = []
  const seconds = (result.elapsedMs / 1000).toFixed(2)
  const count = status.regions.flatMap(r => r.clusters).flatMap(c => c.hsms).length
  const clusterCount = status.regions.flatMap(r => r.clusters).length
  const did = result.started.length === 0 ? `all ${count} HSMs were already running` : `started ${result.started.length} of ${count} HSMs`
  lines.push(`hsmlab: lab ready in ${seconds} s (${did}${result.activated.length > 0 ? `, activated ${result.activated.join(', ')}` : ''})`)
  lines.push(`  data and logs: ${status.dir}`)
  let firstCu: { name: string, password: string } | undefined
  for (const region of status.regions) {
    for (const cluster of region.clusters) {
      const spec = specOf(topology, cluster)
      firstCu ??= spec?.users.find(u => u.type === 'CU')
      lines.push('')
      lines.push(`${region.name}/${cluster.name}  ${cluster.id}  ${cluster.state}`)
      lines.push(...table(hsmRows(cluster), '  '))
      lines.push(`  users: ${credentials(spec, cluster)}`)
      // With one cluster, "Next" below names its configuration already.
      if (clusterCount > 1) lines.push(`  CMU:   npx cloudhsm_mgmt_util ${displayPath(cluster.cmuConfig, cwd)}`)
    }
  }
  const flag = dirFlag(status.dir, cwd)
  const kmu = flag === '' ? 'npx key_mgmt_util' : `npx key_mgmt_util --config ${displayPath(status.kmuConfig, cwd)}`
  lines.push('')
  lines.push('Next:')
  const first = status.regions[0]?.clusters[0]
  const next: string[][] = []
  if (first !== undefined) {
    const spec = specOf(topology, first)
    next.push([`npx cloudhsm_mgmt_util ${displayPath(first.cmuConfig, cwd)}`, spec?.activate === undefined ? `then: loginHSM PRECO ${DEFAULT_ADMIN_NAME} ${DEFAULT_ADMIN_PASSWORD}` : `then: loginHSM CO ${DEFAULT_ADMIN_NAME} ${spec.activate.admin}`])
  }
  next.push([kmu, firstCu === undefined ? `the first cluster's HSMs` : `then: loginHSM -u CU -s ${firstCu.name} -p ${firstCu.password}`])
  next.push([`npx hsmlab status${flag}`, 'what runs, where'])
  next.push([`npx hsmlab down${flag}`, 'stop every HSM (data kept; --purge deletes it)'])
  lines.push(...table(next, '  '))
  return lines.join('\n') + '\n'
}

/** What `hsmlab status` prints without --json. */
export function formatStatus (status: LabStatus): string {
  const hsms = status.regions.flatMap(r => r.clusters).flatMap(c => c.hsms)
  const up = hsms.filter(h => h.state === 'ACTIVE').length
  const lines = [`lab ${status.dir}: ${status.state} (${up} of ${hsms.length} HSMs up)`]
  for (const region of status.regions) {
    for (const cluster of region.clusters) {
      lines.push('')
      lines.push(`${region.name}/${cluster.name}  ${cluster.id}  ${cluster.state}${cluster.activated ? '' : ' (not activated)'}`)
      lines.push(`  CMU config: ${cluster.cmuConfig}`)
      lines.push(...table(hsmRows(cluster), '  '))
    }
  }
  const down = hsms.filter(h => h.state !== 'ACTIVE')
  if (down.length > 0) {
    lines.push('')
    lines.push(`${down.length} HSM${down.length === 1 ? ' is' : 's are'} not answering: 'hsmlab up' starts ${down.length === 1 ? 'it' : 'them'} again (logs: ${down.map(h => h.log).join(', ')})`)
  }
  return lines.join('\n') + '\n'
}

/** What `hsmlab down` prints. */
export function formatDown (result: LabDownResult): string {
  if (!result.found) return `hsmlab: there is no lab in ${result.dir}; nothing to stop\n`
  const killed = result.stopped.filter(s => s.how === 'killed')
  const lines = [`hsmlab: stopped ${result.stopped.length} HSM process${result.stopped.length === 1 ? '' : 'es'} of ${result.dir}${killed.length > 0 ? ` (${killed.length} did not stop on SIGTERM and were killed)` : ''}`]
  lines.push(result.purged ? '  data deleted (--purge)' : "  data kept: 'hsmlab up' starts the lab again with its users and keys; 'hsmlab down --purge' deletes it")
  return lines.join('\n') + '\n'
}
