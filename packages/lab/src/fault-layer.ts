/**
 * The lab's fault layer, as `hsmlab up` sets it up (docs/lab.md "Faults"): one fault proxy
 * process per lab (`hsmlab-fault-proxy`, started detached like the control planes, restarted on
 * its port with its seed), and a proxy of it on every link of the lab (fault-links.ts):
 *
 * - client → HSM: each proxy listens on the HSM's own address with a port of its own; the CMU and
 *   KMU configurations and the status name it, so every client goes through it;
 * - HSM → HSM (replication) and control plane → HSM: the lab gives each region's control plane
 *   its routes (`HsmlabSetHsmRoutes`): the peer list it sends each HSM, and the address it dials
 *   itself, name the proxies; `up` returns once every HSM took its list;
 * - control plane → control plane: each region's control plane reads its own regions file
 *   (`DIR/<region>/regions.json`), which names the WAN proxies `wan/<region>-><other>`.
 *
 * What a proxy adds when no fault is set is a bare pipe (docs/faults.md "Cost with no toxic").
 * The lab's own calls (the cloudhsmv2 API, the activation of new clusters) go direct, as a person
 * reaches the AWS API from outside the VPC whatever happens inside it.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import type { Cluster, ControlPlaneClient, Hsm, HsmRoute } from '@hsmlab/control-plane'
import { FAULT_PROXY_BIN_PATH, FaultClient, randomSeed } from '@hsmlab/fault-proxy'
import type { ProxyJson } from '@hsmlab/fault-proxy'
import { writeFileAtomic } from '@hsmlab/process'
import { labDefaults } from './defaults.js'
import { LabError, LAB_ERR_FAULTS, LAB_ERR_USAGE } from './errors.js'
import { planLinks } from './fault-links.js'
import type { LinkPlanInput, PlannedLink } from './fault-links.js'
import type { ClusterState, FaultLinkState, FaultProxyState, LabLayout, LabState, LabStateWriter } from './lab-state.js'
import { isLabProcess, launchFaultProxy, stopProcess, waitGone, waitUntilReaped } from './launcher.js'

/** Options of the fault layer in `labUp`. */
export interface FaultLayerOptions {
  /** Seed of the fault proxy's random draws when it starts. @default the lab's recorded one, else a random one */
  seed?: number
  /** `--log-level` of the fault proxy. @default labDefaults.logLevel */
  logLevel?: string
  /** @default labDefaults.readyTimeoutMs */
  readyTimeoutMs?: number
  /** How long the control planes may take to hand every HSM its routed peer list, in milliseconds. @default labDefaults.stepTimeoutMs */
  routesTimeoutMs?: number
  /** @default labDefaults.apiPollIntervalMs */
  pollIntervalMs?: number
  /** The fault proxy bin to start. @default FAULT_PROXY_BIN_PATH of @hsmlab/fault-proxy */
  binPath?: string
}

/** The fault proxy's record of a lab, made once (enabled unless the lab was made with `--no-faults`). */
export function faultProxyRecord (lab: LabState, enabled: boolean | undefined): FaultProxyState {
  lab.faultProxy ??= { enabled: enabled ?? true, port: 0, pid: null, seed: null, links: [] }
  if (enabled !== undefined) lab.faultProxy.enabled = enabled
  return lab.faultProxy
}

/**
 * True when the lab routes its links through its fault proxy: it was not made with `--no-faults`,
 * and either its fault proxy runs elsewhere too (`--fault-proxy`, the Docker lab: a container
 * that every network reaches), or every control plane is the lab's own (one that runs elsewhere
 * has HSMs on addresses a local proxy cannot listen on).
 */
export function faultLayerActive (lab: LabState): boolean {
  if (lab.faultProxy?.enabled !== true) return false
  return lab.faultProxy.endpoint !== undefined || lab.controlPlanes.every(cp => cp.endpoint === undefined)
}

/** True when the lab's fault proxy runs elsewhere (`hsmlab up --fault-proxy URL`). */
export function externalFaultProxy (lab: LabState): boolean {
  return lab.faultProxy?.endpoint !== undefined
}

/** The fault proxy's API URL, once it was started (or given); undefined before, or without a fault layer. */
export function faultEndpointOf (lab: LabState): string | undefined {
  const fp = lab.faultProxy
  if (fp === undefined || !fp.enabled) return undefined
  if (fp.endpoint !== undefined) return fp.endpoint
  return fp.port === 0 ? undefined : `http://${labDefaults.faultProxyHost}:${fp.port}`
}

/**
 * Where a link that listens on `listen` is reached: as it is for the lab's own fault proxy; for
 * one that runs elsewhere, which listens on every interface (0.0.0.0), at its API's host name
 * (`fault-proxy` in the Docker lab, which every region's network resolves).
 */
export function reachableAt (lab: LabState, listen: string): string {
  const endpoint = lab.faultProxy?.endpoint
  if (endpoint === undefined || !listen.startsWith(`${EXTERNAL_LISTEN_HOST}:`)) return listen
  return `${new URL(endpoint).hostname}${listen.slice(EXTERNAL_LISTEN_HOST.length)}`
}

/** Where the links of a fault proxy that runs elsewhere listen: every interface of its host. */
const EXTERNAL_LISTEN_HOST = '0.0.0.0'

/** The seed the fault proxy at `url` answers with, or undefined when it does not answer. */
export async function faultProxySeed (url: string, timeoutMs: number = labDefaults.probeTimeoutMs): Promise<number | undefined> {
  try {
    return await new FaultClient({ url, requestTimeoutMs: timeoutMs }).seed()
  } catch {
    return undefined
  }
}

/** True when the recorded fault proxy runs and answers as itself (its seed); one that runs elsewhere: when it answers. */
export async function faultProxyAnswers (layout: LabLayout, fp: FaultProxyState): Promise<boolean> {
  if (fp.endpoint !== undefined) return await faultProxySeed(fp.endpoint) !== undefined
  if (fp.pid === null || fp.port === 0 || !await isLabProcess(fp.pid, layout.faultProxyDir)) return false
  const seed = await faultProxySeed(`http://${labDefaults.faultProxyHost}:${fp.port}`)
  return seed !== undefined && seed === fp.seed
}

/** The `--config` body: every link as last made, on its recorded port. */
function configOf (links: FaultLinkState[]): string {
  return JSON.stringify(links.map(l => ({ name: l.name, listen: l.listen, upstream: l.upstream, enabled: true, hsmlab: { groups: l.groups } })), null, 2) + '\n'
}

/**
 * Makes sure the lab's fault proxy runs and answers: left alone when it does (a `seed` other than
 * its own is refused: the draws of a running proxy cannot be replayed from another seed), killed
 * when it runs but does not answer, started otherwise on its recorded port (any port when that is
 * taken) with its recorded links (none, when one of their ports is taken: they are made again).
 * Resolves true when it started one. Does nothing without a fault layer (stops one that runs).
 */
export async function ensureFaultProxy (layout: LabLayout, lab: LabState, writer: LabStateWriter, options: FaultLayerOptions = {}): Promise<boolean> {
  const fp = faultProxyRecord(lab, undefined)
  if (fp.enabled && fp.endpoint !== undefined) {
    await awaitExternalFaultProxy(fp, fp.endpoint, options)
    await writer.save(lab)
    return false
  }
  if (!faultLayerActive(lab)) {
    if (fp.pid !== null && await isLabProcess(fp.pid, layout.faultProxyDir)) await stopProcess(fp.pid, labDefaults.stopTimeoutMs)
    if (fp.pid !== null) { fp.pid = null; await writer.save(lab) }
    return false
  }
  if (fp.pid !== null && await isLabProcess(fp.pid, layout.faultProxyDir)) {
    if (await faultProxyAnswers(layout, fp)) {
      if (options.seed !== undefined && options.seed !== fp.seed) {
        throw new LabError(LAB_ERR_USAGE, `the lab's fault proxy runs with seed ${String(fp.seed)}; a running proxy cannot take another seed: 'hsmlab down' first, then 'hsmlab up --seed ${options.seed}'`)
      }
      return false
    }
    try { process.kill(fp.pid, 'SIGKILL') } catch { /* gone meanwhile */ }
    await waitGone(fp.pid, labDefaults.stopTimeoutMs)
  }
  if (fp.pid !== null) await waitUntilReaped(fp.pid, labDefaults.stopTimeoutMs)
  await mkdir(layout.faultProxyDir, { recursive: true })
  const seed = options.seed ?? fp.seed ?? randomSeed()
  const launch = async (port: number, links: FaultLinkState[]): Promise<void> => {
    await writeFile(layout.faultProxyConfigFile, configOf(links))
    const ready = await launchFaultProxy({
      binPath: options.binPath ?? FAULT_PROXY_BIN_PATH,
      host: labDefaults.faultProxyHost,
      port,
      seed,
      configFile: layout.faultProxyConfigFile,
      stdoutFile: layout.faultProxyStdoutFile,
      logFile: layout.faultProxyLogFile,
      ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
      ...(options.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: options.readyTimeoutMs }),
      onSpawn: async pid => { fp.pid = pid; await writer.save(lab) }
    })
    fp.pid = ready.pid
    fp.port = ready.port
    fp.seed = ready.seed
    fp.startedAt = new Date().toISOString()
  }
  const attempts: Array<[number, FaultLinkState[]]> = [[fp.port, fp.links]]
  // A port taken meanwhile, the API's or a link's: start with no links (they are made again by
  // `reconcileFaultLinks`, on their recorded ports where free), then on any port.
  if (fp.links.length > 0) attempts.push([fp.port, []])
  if (fp.port !== 0) attempts.push([0, []])
  let failure: unknown
  for (const [port, links] of attempts) {
    try {
      await launch(port, links)
      failure = undefined
      break
    } catch (err) {
      failure = err
      if (!/EADDRINUSE|FAULT_ERR_LISTEN|FAULT_ERR_CONFIG|address already in use|EADDRNOTAVAIL/.test((err as Error).message)) break
      if (fp.pid !== null) await waitGone(fp.pid, labDefaults.stopTimeoutMs)
    }
  }
  if (failure !== undefined) throw failure as Error
  await writer.save(lab)
  return true
}

/**
 * Waits until the fault proxy that runs elsewhere answers (as a container starts, it may not yet),
 * and records its seed. Its seed is its own: `--seed` cannot change it.
 */
async function awaitExternalFaultProxy (fp: FaultProxyState, endpoint: string, options: FaultLayerOptions): Promise<void> {
  const timeoutMs = options.readyTimeoutMs ?? labDefaults.readyTimeoutMs
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const seed = await faultProxySeed(endpoint)
    if (seed !== undefined) {
      if (options.seed !== undefined && options.seed !== seed) {
        throw new LabError(LAB_ERR_USAGE, `the fault proxy at ${endpoint} runs with seed ${seed}; it runs elsewhere, so --seed cannot change it: start it with --seed ${options.seed}`)
      }
      fp.seed = seed
      return
    }
    if (Date.now() >= deadline) throw new LabError(LAB_ERR_FAULTS, `the fault proxy at ${endpoint} (--fault-proxy) did not answer within ${timeoutMs / 1000} s`)
    await new Promise(resolve => setTimeout(resolve, labDefaults.externalPollIntervalMs))
  }
}

/** The address (`host:port`) of an HSM's own endpoint, `ws://127.1.1.4:38211` → `127.1.1.4:38211`; '' without one. */
function addressOf (hsm: Hsm): string {
  return hsm.HsmlabEndpoint === undefined ? '' : hsm.HsmlabEndpoint.replace(/^ws:\/\//, '')
}

/** The HSMs of a cluster as its configuration lists them. */
function liveHsms (cluster: Cluster | undefined): Hsm[] {
  return (cluster?.Hsms ?? []).filter(h => h.State !== 'DELETED')
}

/** The link plan of a lab from what its control planes describe now. */
export function planOf (lab: LabState, described: Map<ClusterState, Cluster>, controlPlaneAddress: (region: string) => string): PlannedLink[] {
  const input: LinkPlanInput = {
    regions: lab.controlPlanes.map(cp => ({
      name: cp.region,
      controlPlane: controlPlaneAddress(cp.region),
      clusters: lab.clusters.filter(c => c.region === cp.region).map(record => ({
        name: record.name,
        hsms: liveHsms(described.get(record)).map(h => ({ id: h.HsmId, address: addressOf(h) }))
      }))
    }))
  }
  // A link to an HSM that does not listen (yet) has nowhere to go. A fault proxy that runs
  // elsewhere cannot listen on the HSMs' addresses: its links listen on every interface of its own.
  const external = externalFaultProxy(lab)
  return planLinks(input).filter(l => l.upstream !== '' && !l.upstream.endsWith(':0'))
    .map(l => external ? { ...l, listenHost: EXTERNAL_LISTEN_HOST } : l)
}

function sameGroups (a: readonly string[] | undefined, b: readonly string[]): boolean {
  return JSON.stringify([...(a ?? [])].sort()) === JSON.stringify([...b].sort())
}

function hostOf (listen: string): string {
  return listen.slice(0, listen.lastIndexOf(':'))
}

/** What `reconcileFaultLinks` leaves: where clients reach each HSM (its client link). */
export interface FaultLinks {
  /** HSM id → `ws://host:port` of its client link. */
  clientEndpoints: Map<string, string>
}

/**
 * Makes the fault proxy hold exactly the lab's links (plan): creates those missing (on their
 * recorded port when it is free), points those whose HSM moved at its new address, deletes the
 * lab's links that are no longer planned (proxies someone else made are left alone); records
 * them in the lab's state (`recordLinks` writes them to disk).
 */
async function reconcileProxies (layout: LabLayout, lab: LabState, plan: PlannedLink[]): Promise<FaultLinkState[]> {
  const fp = faultProxyRecord(lab, undefined)
  const url = faultEndpointOf(lab)
  if (url === undefined) throw new LabError(LAB_ERR_FAULTS, 'the fault proxy has not been started')
  const faults = new FaultClient({ url, requestTimeoutMs: labDefaults.apiRequestTimeoutMs })
  const fail = (what: string, err: unknown): LabError => new LabError(LAB_ERR_FAULTS, `${what}: ${(err as Error).message}`, { cause: err })
  let existing: Record<string, ProxyJson>
  try {
    existing = await faults.list()
  } catch (err) {
    throw fail(`the fault proxy at ${url} does not answer; its log: ${layout.faultProxyLogFile}`, err)
  }
  const recorded = new Map(fp.links.map(l => [l.name, l]))
  const listenOf = (link: PlannedLink): string => {
    const before = recorded.get(link.name)
    return before !== undefined && hostOf(before.listen) === link.listenHost ? before.listen : `${link.listenHost}:0`
  }
  // The missing links in one request (all of them, for a fault proxy started just now); when that
  // fails (a recorded port taken meanwhile), what it made is kept and the rest made one by one.
  const missing = plan.filter(link => existing[link.name] === undefined)
  if (missing.length > 1) {
    try {
      for (const proxy of await faults.populate(missing.map(link => ({ name: link.name, listen: listenOf(link), upstream: link.upstream, groups: link.groups })))) {
        existing[proxy.name] = proxy
      }
    } catch {
      try {
        existing = await faults.list()
      } catch (err) {
        throw fail(`the fault proxy at ${url} does not answer; its log: ${layout.faultProxyLogFile}`, err)
      }
    }
  }
  const made = await Promise.all(plan.map(async (link): Promise<FaultLinkState> => {
    const current = existing[link.name]
    let proxy: ProxyJson
    try {
      if (current !== undefined) {
        // A fault proxy that runs elsewhere keeps the address its links were given there (the
        // Docker lab's client links have fixed ports, published on the host).
        const moved = !externalFaultProxy(lab) && hostOf(current.listen) !== link.listenHost
        if (moved || current.upstream !== link.upstream || !sameGroups(current.hsmlab?.groups, link.groups)) {
          proxy = await faults.updateProxy(link.name, { upstream: link.upstream, groups: link.groups, ...(moved ? { listen: `${link.listenHost}:0` } : {}) })
        } else {
          proxy = current
        }
      } else {
        const listen = listenOf(link)
        try {
          proxy = await faults.createProxy({ name: link.name, listen, upstream: link.upstream, groups: link.groups })
        } catch (err) {
          // Its recorded port was taken meanwhile: any port (the configurations are rewritten).
          if (listen.endsWith(':0')) throw err
          proxy = await faults.createProxy({ name: link.name, listen: `${link.listenHost}:0`, upstream: link.upstream, groups: link.groups })
        }
      }
    } catch (err) {
      throw fail(`cannot make the link ${link.name} (${link.listenHost} → ${link.upstream}) in the fault proxy at ${url}`, err)
    }
    return {
      name: link.name,
      kind: link.kind,
      listen: proxy.listen,
      upstream: link.upstream,
      groups: link.groups,
      ...(link.hsmId === undefined ? {} : { hsmId: link.hsmId }),
      from: link.from
    }
  }))
  const planned = new Set(plan.map(l => l.name))
  await Promise.all(fp.links.filter(l => !planned.has(l.name) && existing[l.name] !== undefined).map(async l => {
    await faults.deleteProxy(l.name).catch(() => undefined)
  }))
  fp.links = made
  return made
}

/** Writes the links to lab.json and to the fault proxy's `--config` (its links when it is started again; none for one that runs elsewhere). */
async function recordLinks (layout: LabLayout, lab: LabState, writer: LabStateWriter, links: FaultLinkState[]): Promise<void> {
  await writer.save(lab)
  if (externalFaultProxy(lab)) return
  await writeFileAtomic(layout.faultProxyConfigFile, configOf(links), { mode: 0o644 })
}

/** Runs every task to its end, then throws the first failure. */
async function settleAll (tasks: Array<Promise<unknown>>): Promise<void> {
  const failed = (await Promise.allSettled(tasks)).find((o): o is PromiseRejectedResult => o.status === 'rejected')
  if (failed !== undefined) throw failed.reason
}

/** Writes each region's regions file: its own region direct, the others through its WAN links when `links` has them. */
export async function writeRegionsFiles (layout: LabLayout, lab: LabState, direct: Record<string, string>, links: FaultLinkState[] = []): Promise<void> {
  await Promise.all(lab.controlPlanes.map(async cp => {
    const map: Record<string, string> = {}
    for (const [region, endpoint] of Object.entries(direct)) {
      const wan = links.find(l => l.kind === 'wan' && l.from === cp.region && l.name.endsWith(`->${region}`))
      map[region] = region === cp.region || wan === undefined ? endpoint : `http://${reachableAt(lab, wan.listen)}`
    }
    await mkdir(layout.regionDir(cp.region), { recursive: true })
    await writeFileAtomic(layout.regionRegionsFile(cp.region), JSON.stringify(map, null, 2) + '\n', { mode: 0o644 })
  }))
}

/** The region of a peer or control link, from its name (`peer/<region>/...`, `control/<region>/...`). */
function regionOfInnerLink (link: FaultLinkState): string {
  return link.name.split('/')[1] ?? ''
}

/** The routes a region's control plane is given: its HSMs' peer links and its own links to them. */
function routesOf (lab: LabState, region: string, links: FaultLinkState[]): HsmRoute[] {
  return links
    .filter(l => (l.kind === 'peer' || l.kind === 'control') && l.hsmId !== undefined && regionOfInnerLink(l) === region)
    .map(l => ({ HsmId: l.hsmId as string, From: l.from, Endpoint: `ws://${reachableAt(lab, l.listen)}`, Upstream: `ws://${l.upstream}` }))
}

/**
 * Gives every control plane its routes and waits until each HSM took its routed peer list (an
 * HSM that is not running is not waited for: its control plane hands it the list when it is back).
 */
async function routeControlPlanes (lab: LabState, links: FaultLinkState[], apiOf: (region: string) => ControlPlaneClient, options: FaultLayerOptions): Promise<void> {
  const timeoutMs = options.routesTimeoutMs ?? labDefaults.stepTimeoutMs
  // With a fault proxy that runs elsewhere, the control planes that run elsewhere take routes too.
  await Promise.all(lab.controlPlanes.filter(cp => cp.endpoint === undefined || externalFaultProxy(lab)).map(async cp => {
    const api = apiOf(cp.region)
    const routes = routesOf(lab, cp.region, links)
    let answer
    try {
      answer = await api.setHsmRoutes(routes)
    } catch (err) {
      throw new LabError(LAB_ERR_FAULTS, `the control plane of ${cp.region} did not take its routes through the fault proxy: ${(err as Error).message}`, { cause: err })
    }
    const deadline = Date.now() + timeoutMs
    const intervalMs = options.pollIntervalMs ?? labDefaults.apiPollIntervalMs
    let delayMs = Math.min(labDefaults.apiPollFirstIntervalMs, intervalMs)
    for (;;) {
      const waiting = answer.filter(r => r.InUse && !r.Delivered)
      if (waiting.length === 0) return
      if (Date.now() >= deadline) {
        const who = [...new Set(waiting.map(r => r.From))].join(', ')
        throw new LabError(LAB_ERR_FAULTS, `the control plane of ${cp.region} could not hand ${who} its peer list through the fault proxy within ${timeoutMs / 1000} s (is a fault set on the links 'control/${cp.region}/...'? 'hsmlab fault list' tells)`)
      }
      await new Promise(resolve => setTimeout(resolve, delayMs))
      delayMs = Math.min(delayMs * 2, intervalMs)
      answer = await api.describeHsmRoutes()
    }
  }))
}

/**
 * The fault layer's part of `hsmlab up`, once every cluster is built: every link made in the
 * fault proxy, the regions files through the WAN links, the control planes given their routes
 * (each HSM has its routed peer list). Without a fault layer: the routes removed and the regions
 * files direct. Resolves with where clients reach each HSM (the configurations' addresses), once
 * `whileRouting` (given those addresses as soon as the links are made) is done too.
 */
export async function reconcileFaultLayer (layout: LabLayout, lab: LabState, writer: LabStateWriter, described: Map<ClusterState, Cluster>,
  controlPlaneEndpoints: Record<string, string>, apiOf: (region: string) => ControlPlaneClient, options: FaultLayerOptions = {},
  whileRouting: (links: FaultLinks) => Promise<void> = async () => {}): Promise<FaultLinks> {
  if (!faultLayerActive(lab)) {
    const direct: FaultLinks = { clientEndpoints: new Map() }
    await settleAll([
      whileRouting(direct),
      // The links stay recorded (not in use): `up --faults` makes them again on their ports.
      writeRegionsFiles(layout, lab, controlPlaneEndpoints),
      // Routes a fault layer left behind would lead to a proxy that no longer runs.
      ...lab.controlPlanes.filter(cp => cp.endpoint === undefined).map(async cp => {
        if ((await apiOf(cp.region).describeHsmRoutes()).length > 0) await apiOf(cp.region).setHsmRoutes([])
      })
    ])
    return direct
  }
  const plan = planOf(lab, described, region => (controlPlaneEndpoints[region] ?? '').replace(/^https?:\/\//, ''))
  const links = await reconcileProxies(layout, lab, plan)
  const routed: FaultLinks = { clientEndpoints: clientEndpointsOf(lab) }
  // The control planes take their routes (the longest part: each HSM gets its peer list through
  // the links) while the links and the configurations are written.
  await settleAll([
    recordLinks(layout, lab, writer, links),
    whileRouting(routed),
    (async () => {
      await writeRegionsFiles(layout, lab, controlPlaneEndpoints, links)
      await routeControlPlanes(lab, links, apiOf, options)
    })()
  ])
  return routed
}

/** HSM id → `ws://host:port` of its client link, as lab.json records them (empty without a fault layer). */
export function clientEndpointsOf (lab: LabState): Map<string, string> {
  if (!faultLayerActive(lab)) return new Map()
  return new Map((lab.faultProxy?.links ?? []).filter(l => l.kind === 'client' && l.hsmId !== undefined).map(l => [l.hsmId as string, `ws://${reachableAt(lab, l.listen)}`]))
}

/** Stops the lab's fault proxy (SIGTERM, SIGKILL after the deadline); resolves with how it ended and its pid. */
export async function stopFaultProxy (layout: LabLayout, lab: LabState | undefined): Promise<{ pid: number, how: 'terminated' | 'killed' } | undefined> {
  const pid = lab?.faultProxy?.pid ?? null
  if (pid === null || !await isLabProcess(pid, layout.faultProxyDir)) return undefined
  const how = await stopProcess(pid, labDefaults.stopTimeoutMs)
  return how === 'gone' ? undefined : { pid, how }
}
