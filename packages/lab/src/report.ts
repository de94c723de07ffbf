/**
 * What `hsmlab up`, `status`, `down` and `backup` print for a person: the summary after `up`
 * (where the lab is, its control planes, clusters and HSMs, the credentials and the command lines
 * to type next), the status tables, and one line for `down`.
 */
import { isAbsolute, join, relative } from 'node:path'
import { ROOT_FILE_NAMES } from '@hsmlab/crypto'
import { DEFAULT_ADMIN_NAME, DEFAULT_ADMIN_PASSWORD } from '@hsmlab/hsm'
import { labDefaults } from './defaults.js'
import type { LabFault } from './fault-vocabulary.js'
import { UNKNOWN_PASSWORD } from './lab-state.js'
import type { ClusterStatus, LabDownResult, LabStatus, LabUpResult, RegionStatus } from './lab.js'
import type { Topology, TopologyCluster } from './topology.js'
import { describeScope } from './sync-scope.js'

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

function specOf (topology: Topology, region: string, name: string): TopologyCluster | undefined {
  return topology.regions.find(r => r.name === region)?.clusters.find(c => c.name === name)
}

/** The cluster a clone's users come from (following cloneOf to a cluster made from scratch). */
function originOf (topology: Topology, spec: TopologyCluster | undefined): TopologyCluster | undefined {
  let at = spec
  for (let hops = 0; at?.cloneOf !== undefined && hops < 32; hops++) at = specOf(topology, at.cloneOf.region, at.cloneOf.cluster)
  return at
}

function credentials (topology: Topology, cluster: ClusterStatus): string {
  const spec = specOf(topology, cluster.region, cluster.name)
  const origin = originOf(topology, spec)
  const from = spec?.cloneOf === undefined ? '' : `from the backup of ${spec.cloneOf.region}/${spec.cloneOf.cluster}: `
  if (origin?.activate === undefined && !cluster.activated) {
    return `PRECO ${DEFAULT_ADMIN_NAME} / ${DEFAULT_ADMIN_PASSWORD} (not activated: loginHSM PRECO ${DEFAULT_ADMIN_NAME} ${DEFAULT_ADMIN_PASSWORD}, then changePswd PRECO ${DEFAULT_ADMIN_NAME} <new password>)`
  }
  if (origin?.activate === undefined) return `activated by hand: CO ${DEFAULT_ADMIN_NAME} / the password it was given`
  return from + [`CO ${DEFAULT_ADMIN_NAME} / ${shown(origin.activate.admin)}`, ...origin.users.map(u => `${u.type} ${u.name} / ${shown(u.password)}`)].join(', ')
}

/** A password of the topology as the summary shows it; one the lab no longer has is named, not shown. */
function shown (password: string): string {
  return password === UNKNOWN_PASSWORD ? '(its password in the topology file)' : password
}

/** The `--dir` flag to repeat in printed commands, or '' for the default lab directory. */
function dirFlag (dir: string, cwd: string): string {
  return dir === join(cwd, labDefaults.dir) ? '' : ` --dir ${displayPath(dir, cwd)}`
}

function plural (n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

function regionLine (region: RegionStatus): string {
  const cp = region.controlPlane
  if (cp === null) return `${region.name}  control plane not started`
  return `${region.name}  control plane ${cp.endpoint}  ${cp.state}${cp.pid === null ? '' : `  pid ${cp.pid}`}`
}

function clusterLine (cluster: ClusterStatus): string {
  const clone = cluster.cloneOf === null ? '' : `  clone of ${cluster.cloneOf}${cluster.sourceBackupId === null ? '' : ` (from ${cluster.sourceBackupId})`}`
  return `  ${cluster.name}  ${cluster.id ?? '(not created)'}  ${cluster.state}${clone}`
}

/** The fault layer in one line. */
function faultsLine (status: LabStatus): string {
  const f = status.faults
  if (f.endpoint === null) return '  faults: no fault proxy (every link direct)'
  const seed = f.seed === null ? '' : `, seed ${f.seed} (replay its draws with 'hsmlab up --seed ${f.seed}' on a new lab)`
  return `  faults: fault proxy ${f.endpoint} ${f.state}${f.pid === null ? '' : ` pid ${f.pid}`} (Toxiproxy's API)${seed}`
}

/** A fault as a person reads it. */
function describeFault (fault: LabFault): string {
  const where = 'group' in fault ? fault.group : `${fault.between[0]} <-> ${fault.between[1]}`
  if (fault.type === 'latency') return `latency ${fault.ms} ms${(fault.jitter ?? 0) > 0 ? ` ± ${fault.jitter ?? 0}` : ''} on ${where}`
  if (fault.type === 'reset_peer') return `reset_peer on ${where}`
  return `${fault.type} ${where}`
}

/** A primary's synchronisation task: one line per replica, with its records counted by status. */
function syncLines (cluster: ClusterStatus): string[] {
  return cluster.syncTasks.flatMap(task => [
    `    sync task ${task.id}: ${describeScope(task.scope)}`,
    ...task.replicas.map(r => `      -> ${r.region}/${r.cluster ?? r.clusterId}  ${r.type}  ${r.state}  ${r.counts.SYNCHRONIZED} SYNCHRONIZED, ${r.counts.SYNCHRONIZING} SYNCHRONIZING, ${r.counts.FAILED} FAILED`)
  ])
}

/** What `hsmlab up` prints once the lab is ready. */
export function formatUpSummary (result: LabUpResult, cwd: string): string {
  const { status, topology } = result
  const lines: string[] = []
  const seconds = (result.elapsedMs / 1000).toFixed(2)
  const clusters = status.regions.flatMap(r => r.clusters)
  const count = clusters.flatMap(c => c.hsms).length
  const did: string[] = []
  if (result.started.length > 0) did.push(`started ${plural(result.started.length, 'control plane')}`)
  if (result.created.length > 0) did.push(`created ${result.created.join(', ')}`)
  if (result.activated.length > 0) did.push(`activated ${result.activated.join(', ')}`)
  if (result.hsmsCreated > 0) did.push(`added ${plural(result.hsmsCreated, 'HSM')}`)
  if (result.faultProxyStarted) did.push('started the fault proxy')
  lines.push(`hsmlab: lab ready in ${seconds} s (${did.length === 0 ? `nothing to start: ${plural(status.regions.length, 'control plane')} and ${plural(count, 'HSM')} running` : did.join(', ')})`)
  lines.push(`  data and logs: ${status.dir}`)
  lines.push(`  stand-in roots: ${Object.values(ROOT_FILE_NAMES).map(name => displayPath(join(status.dir, 'roots', name), cwd)).join(', ')} (the AWS and manufacturer roots of the HSM certificates)`)
  lines.push(faultsLine(status))
  if (status.console.url !== null) lines.push(`  console: ${status.console.url} (open it in a browser on this machine)`)
  if (result.faultsApplied.length > 0) lines.push(`  faults of the topology set: ${result.faultsApplied.map(describeFault).join('; ')}`)
  let firstCu: { name: string, password: string } | undefined
  for (const region of status.regions) {
    lines.push('')
    lines.push(regionLine(region))
    for (const cluster of region.clusters) {
      firstCu ??= originOf(topology, specOf(topology, cluster.region, cluster.name))?.users.find(u => u.type === 'CU')
      lines.push(clusterLine(cluster))
      lines.push(...table(hsmRows(cluster), '    '))
      lines.push(`    users: ${credentials(topology, cluster)}`)
      lines.push(...syncLines(cluster))
      lines.push(`    CMU:   npx cloudhsm_mgmt_util ${displayPath(cluster.cmuConfig, cwd)}`)
      lines.push(`    PKCS#11: ${pkcs11Line(cluster)}`)
    }
  }
  const crosses = Object.entries(status.cmuConfigs)
  if (crosses.length > 0) {
    lines.push('')
    lines.push('Across a cluster and its clone (server 0: the source, server 1: the clone; syncKey / syncUser in server 0):')
    lines.push(...table(crosses.map(([key, file]) => [`npx cloudhsm_mgmt_util ${displayPath(file, cwd)}`, key]), '  '))
  }
  const flag = dirFlag(status.dir, cwd)
  const kmu = flag === '' ? 'npx key_mgmt_util' : `npx key_mgmt_util --config ${displayPath(status.kmuConfig, cwd)}`
  lines.push('')
  lines.push('Next:')
  const first = clusters[0]
  const next: string[][] = []
  if (first !== undefined) {
    const origin = originOf(topology, specOf(topology, first.region, first.name))
    next.push([`npx cloudhsm_mgmt_util ${displayPath(first.cmuConfig, cwd)}`, origin?.activate === undefined ? `then: loginHSM PRECO ${DEFAULT_ADMIN_NAME} ${DEFAULT_ADMIN_PASSWORD}` : `then: loginHSM CO ${DEFAULT_ADMIN_NAME} ${shown(origin.activate.admin)}`])
  }
  next.push([kmu, firstCu === undefined ? `the first cluster's HSMs` : `then: loginHSM -u CU -s ${firstCu.name} -p ${shown(firstCu.password)}`])
  const firstPlane = status.regions[0]?.controlPlane
  if (firstPlane !== null && firstPlane !== undefined) {
    next.push([`aws cloudhsmv2 describe-clusters --endpoint-url ${firstPlane.endpoint} --region ${status.regions[0]?.name ?? ''}`, 'any credentials will do (AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x)'])
  }
  next.push([`npx hsmlab status${flag}`, 'what runs, where'])
  if (status.faults.endpoint !== null) next.push([`npx hsmlab fault list${flag}`, 'every link through the fault proxy; hsmlab fault --help to cut or slow them'])
  const primary = clusters.find(c => c.syncTasks.length > 0)
  if (primary !== undefined) next.push([`npx hsmlab sync status ${primary.region}/${primary.name}${flag}`, 'what its synchronisation task carried to its replicas, and what failed and why'])
  next.push([`npx hsmlab down${flag}`, 'stop every process (data kept; --purge deletes it)'])
  lines.push(...table(next, '  '))
  return lines.join('\n') + '\n'
}

/** The one line an application's shell pastes to reach a cluster through the PKCS#11 library (docs/pkcs11.md). */
function pkcs11Line (cluster: ClusterStatus): string {
  const env = Object.entries(cluster.client.env).map(([k, v]) => `${k}=${v}`).join(' ')
  return `export ${env} HSMLAB_PKCS11_MODULE=${cluster.client.pkcs11Module}`
}

/** What `hsmlab status` prints without --json. */
export function formatStatus (status: LabStatus): string {
  const hsms = status.regions.flatMap(r => r.clusters).flatMap(c => c.hsms)
  const up = hsms.filter(h => h.state === 'ACTIVE').length
  const planes = status.regions.filter(r => r.controlPlane?.state === 'RUNNING').length
  const lines = [`lab ${status.dir}: ${status.state} (${planes} of ${plural(status.regions.length, 'control plane')} running, ${up} of ${plural(hsms.length, 'HSM')} ACTIVE)`]
  lines.push(faultsLine(status).trimStart())
  if (status.console.state !== 'NONE') lines.push(`console: ${status.console.url ?? status.console.endpoint ?? ''} ${status.console.state}${status.console.pid === null ? " ('hsmlab up' starts it again)" : ` pid ${status.console.pid}`}`)
  for (const region of status.regions) {
    lines.push('')
    lines.push(regionLine(region))
    for (const cluster of region.clusters) {
      lines.push(clusterLine(cluster) + (cluster.stateMessage === undefined ? '' : `: ${cluster.stateMessage}`))
      lines.push(`    CMU config: ${cluster.cmuConfig}`)
      lines.push(cluster.client.state === 'NONE' ? "    PKCS#11: no client daemon ('hsmlab up --clients' starts one per cluster)" : `    PKCS#11 (client daemon ${cluster.client.state}): ${pkcs11Line(cluster)}`)
      lines.push(...table(hsmRows(cluster), '    '))
      lines.push(...syncLines(cluster))
      for (const h of cluster.hsms) {
        if (h.stateMessage === undefined) continue
        lines.push(`    ${h.id}: ${h.stateMessage}`)
        // Restarting cannot help a store that refused to load; say what does.
        if (h.stateMessage.includes('HSM_ERR_STORE_LOAD')) lines.push(`    ${h.id}: its data is refused: restore it from a peer or a backup (docs/lab.md, "An HSM whose data is refused")`)
      }
    }
  }
  const crosses = Object.entries(status.cmuConfigs)
  if (crosses.length > 0) {
    lines.push('')
    lines.push('Across a cluster and its clone:')
    lines.push(...table(crosses, '  '))
  }
  const down = status.regions.filter(r => r.controlPlane !== null && r.controlPlane.state !== 'RUNNING')
  if (down.length > 0 || status.state !== 'RUNNING') {
    lines.push('')
    lines.push(status.state === 'STOPPED'
      ? "nothing runs: 'hsmlab up' starts the lab again with its data"
      : `not everything runs: 'hsmlab up' starts what is missing and waits for every HSM${down.length === 0 ? '' : ` (logs: ${down.map(r => r.controlPlane?.log ?? '').join(', ')})`}`)
  }
  return lines.join('\n') + '\n'
}

/** What `hsmlab down` prints. */
export function formatDown (result: LabDownResult): string {
  if (!result.found) return `hsmlab: there is no lab in ${result.dir}; nothing to stop\n`
  const planes = result.stopped.filter(s => s.kind === 'control-plane').length
  const hsms = result.stopped.filter(s => s.kind === 'hsm').length
  const killed = result.stopped.filter(s => s.how === 'killed').length
  const daemons = result.stopped.filter(s => s.kind === 'client-daemon').length
  const others = [
    ...(daemons > 0 ? [plural(daemons, 'client daemon')] : []),
    ...(result.stopped.some(s => s.kind === 'console') ? ['the console'] : []),
    ...(result.stopped.some(s => s.kind === 'fault-proxy') ? ['the fault proxy'] : [])
  ]
  const rest = others.length === 0 ? '' : `, ${others.length > 1 ? `${others.slice(0, -1).join(', ')} and ` : 'and '}${others[others.length - 1] ?? ''}`
  const lines = [`hsmlab: stopped ${plural(planes, 'control plane')} and ${plural(hsms, 'HSM process', 'HSM processes')}${rest} of ${result.dir}${killed > 0 ? ` (${killed} did not stop by themselves and were killed)` : ''}`]
  if (result.leftRunning.length > 0) {
    lines.push(`  left running: ${result.leftRunning.map(c => `the control plane of ${c.region} (${c.endpoint})`).join(', ')}, which the lab did not start; stop them as they were started (the Docker lab: docker compose down)`)
  }
  lines.push(result.purged ? '  data deleted (--purge)' : "  data kept: 'hsmlab up' starts the lab again with its clusters, users and keys; 'hsmlab down --purge' deletes it")
  return lines.join('\n') + '\n'
}
