/**
 * `hsmlab fault ...` as functions, for the bin, scripts, tests and the scenario runner: set a fault
 * on a group of the lab's links (partition, blackhole, latency between two groups, reset_peer),
 * heal a group or everything, list every link and what is set on it. They drive the lab's fault
 * proxy through its API (`FaultClient`); any Toxiproxy client can do the same against
 * `hsmlab status --json`'s `faults.endpoint`. The faults themselves (their fields, their toxics):
 * fault-vocabulary.ts; groups and link names: fault-links.ts, docs/lab.md "Faults".
 *
 * ```ts
 * await applyFault({ dir, fault: { type: 'partition', group: 'us-west-2' } })
 * await applyFault({ dir, fault: { type: 'latency', between: ['us-east-1', 'us-west-2'], ms: 150, jitter: 30 } })
 * await healFaults({ dir })                      // everything
 * await healFaults({ dir, group: 'us-west-2' })  // that group's cuts and the toxics on its links
 * ```
 */
import { appendFile, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { FaultClient, FaultError } from '@hsmlab/fault-proxy'
import type { FaultsJson, ProxyJson, ToxicJson } from '@hsmlab/fault-proxy'
import { labDefaults } from './defaults.js'
import { LabError, LAB_ERR_FAULTS, LAB_ERR_NO_LAB, LAB_ERR_USAGE } from './errors.js'
import { describeGroups, groupIndex, linksBetween } from './fault-links.js'
import { faultEndpointOf, faultProxySeed } from './fault-layer.js'
import { isToxicFault, toxicsOf } from './fault-vocabulary.js'
import type { FaultLinks, FaultToxic, LabFault } from './fault-vocabulary.js'
import { LabLayout, readLabState } from './lab-state.js'

/** Where the lab is: `dir` (default `.hsmlab`) resolved against `cwd` (default the process's). */
export interface FaultLabLocation {
  /** @default labDefaults.dir */
  dir?: string
  /** @default process.cwd() */
  cwd?: string
}

/** Who set or lifted a fault, as the fault timeline tells it (`DIR/faults.jsonl`). */
export type FaultSource = 'cli' | 'console' | 'scenario' | 'topology' | 'api'

/** One line of the lab's fault timeline: a fault set or lifted, when, by whom, on which links. */
export interface FaultJournalEntry {
  /** When, in milliseconds since the epoch. */
  atMs: number
  source: FaultSource
  action: 'apply' | 'heal'
  /** `apply`: the fault set. */
  fault?: LabFault
  /** `heal`: the group healed; absent for everything (or for `toxic`). */
  group?: string
  /** `heal` of one fault's toxics only (a scenario's latency or reset_peer ending): its type. */
  toxic?: string
  links: string[]
}

/** Options of `applyFault`. */
export interface ApplyFaultOptions extends FaultLabLocation {
  fault: LabFault
  /** Who sets it, for the fault timeline. @default 'api' */
  source?: FaultSource
}

/** What `applyFault` did. */
export interface AppliedFault {
  fault: LabFault
  /** The links it was set on, by name. */
  links: string[]
}

/** Options of `healFaults`. */
export interface HealFaultsOptions extends FaultLabLocation {
  /** Who heals, for the fault timeline. @default 'api' */
  source?: FaultSource
  /** Heal only this group: its partition and blackhole, those of the groups inside it, and the toxics on its links. @default everything */
  group?: string
}

/** What `healFaults` did. */
export interface HealedFaults {
  group?: string
  /** The links that had something lifted. */
  links: string[]
}

/** One link as `listFaults` tells it. */
export interface LinkFaults {
  name: string
  listen: string
  upstream: string
  /** Every group it belongs to (explicit ones and the `/` prefixes of its name). */
  groups: string[]
  enabled: boolean
  partitioned: boolean
  blackholed: boolean
  toxics: ToxicJson[]
}

/** What `hsmlab fault list` tells. */
export interface FaultListing {
  /** The fault proxy's API (Toxiproxy's). */
  endpoint: string
  seed: number
  /** Nothing set at all. */
  healed: boolean
  partitions: string[]
  blackholes: string[]
  links: LinkFaults[]
  /** The groups a person can name, for messages. */
  groups: string
}

/** A fault proxy, the links it holds, and their groups. */
interface FaultView {
  client: FaultClient
  endpoint: string
  proxies: ProxyJson[]
  groups: Map<string, string[]>
}

function viewOf (client: FaultClient, endpoint: string, proxies: Record<string, ProxyJson>): FaultView {
  const list = Object.values(proxies)
  return { client, endpoint, proxies: list, groups: groupIndex(list.map(p => ({ name: p.name, groups: p.hsmlab?.groups ?? [] }))) }
}

/** Opens the fault proxy of the lab in DIR; throws LAB_ERR_NO_LAB or LAB_ERR_FAULTS when there is none that answers. */
async function open (location: FaultLabLocation): Promise<FaultView> {
  const layout = new LabLayout(resolve(location.cwd ?? process.cwd(), location.dir ?? labDefaults.dir))
  const lab = await readLabState(layout)
  if (lab === undefined) throw new LabError(LAB_ERR_NO_LAB, `there is no lab in ${layout.dir}; start one with 'hsmlab up'`)
  if (lab.faultProxy?.enabled === false) throw new LabError(LAB_ERR_FAULTS, `the lab in ${layout.dir} runs without a fault proxy ('hsmlab up --no-faults'): its links are direct; 'hsmlab up --faults' brings it back`)
  const endpoint = faultEndpointOf(lab)
  if (endpoint === undefined) throw new LabError(LAB_ERR_FAULTS, `the lab in ${layout.dir} has no fault proxy yet: run 'hsmlab up'`)
  if (await faultProxySeed(endpoint) === undefined) {
    throw new LabError(LAB_ERR_FAULTS, `the fault proxy of the lab in ${layout.dir} does not answer at ${endpoint}: run 'hsmlab up' (it starts it again with its links)`)
  }
  return await faultViewAt(endpoint)
}

/** The fault proxy at `endpoint` and the links it holds. */
export async function faultViewAt (endpoint: string): Promise<FaultView> {
  const client = new FaultClient({ url: endpoint, requestTimeoutMs: labDefaults.apiRequestTimeoutMs })
  return viewOf(client, endpoint, await call(endpoint, async () => await client.list()))
}

async function call<T> (endpoint: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (err instanceof LabError) throw err
    throw new LabError(LAB_ERR_FAULTS, `the fault proxy at ${endpoint}: ${(err as Error).message}`, { cause: err })
  }
}

function describeView (view: FaultView): string {
  return describeGroups(view.proxies.map(p => ({ name: p.name, groups: p.hsmlab?.groups ?? [], kind: 'client' as const })))
}

function linksOf (view: FaultView, group: string): string[] {
  const links = view.groups.get(group)
  if (links === undefined || links.length === 0) {
    throw new LabError(LAB_ERR_USAGE, `the lab has no group '${group}'; name a region, a cluster or an HSM of the lab (${describeView(view)})`)
  }
  return links
}

/** Adds a toxic to a link, or updates the one of that name. */
async function upsertToxic (client: FaultClient, proxy: string, toxic: FaultToxic): Promise<void> {
  const { name, attributes, toxicity } = toxic
  try {
    await client.addToxic(proxy, toxic)
  } catch (err) {
    if (!(err instanceof FaultError) || err.statusCode !== 409) throw err
    await client.updateToxic(proxy, name, { attributes, toxicity })
  }
}

/** The links a toxic goes on: a group's, or those between two groups. */
function selected (view: FaultView, where: FaultLinks): string[] {
  if ('group' in where) return linksOf(view, where.group)
  const [a, b] = where.between
  linksOf(view, a)
  linksOf(view, b)
  const links = linksBetween(view.proxies.map(p => ({ name: p.name, groups: p.hsmlab?.groups ?? [] })), a, b)
  if (links.length === 0) {
    throw new LabError(LAB_ERR_USAGE, `no link runs between '${a}' and '${b}': links run between two regions (wan/...), between two HSMs of a cluster (peer/...), from clients to an HSM and from a control plane to its HSMs; name two regions or two HSMs of one cluster`)
  }
  return links
}

/** Sets `fault` through an open fault proxy (groups checked against its links). */
export async function applyFaultAt (view: FaultView, fault: LabFault): Promise<AppliedFault> {
  const { client, endpoint } = view
  if (!isToxicFault(fault)) {
    if (fault.type !== 'partition' && fault.type !== 'blackhole') {
      throw new LabError(LAB_ERR_USAGE, `unknown fault type ${JSON.stringify((fault as { type?: unknown }).type)}: partition, blackhole, latency or reset_peer`)
    }
    linksOf(view, fault.group)
    const links = await call(endpoint, async () => fault.type === 'partition' ? await client.partition(fault.group) : await client.blackhole(fault.group))
    return { fault, links }
  }
  const links = selected(view, fault)
  const toxics = toxicsOf(fault)
  await call(endpoint, async () => {
    await Promise.all(links.flatMap(link => toxics.map(async toxic => { await upsertToxic(client, link, toxic) })))
  })
  return { fault, links }
}

/**
 * Sets a fault on the links of the lab in DIR; throws LAB_ERR_USAGE for a group the lab does not
 * have (the message lists those it has), LAB_ERR_FAULTS when its fault proxy does not answer.
 */
export async function applyFault (options: ApplyFaultOptions): Promise<AppliedFault> {
  const applied = await applyFaultAt(await open(options), options.fault)
  await recordFault(options, { atMs: Date.now(), source: options.source ?? 'api', action: 'apply', fault: applied.fault, links: applied.links })
  return applied
}

/** Heals through an open fault proxy. */
export async function healFaultsAt (view: FaultView, group?: string): Promise<HealedFaults> {
  const { client, endpoint } = view
  if (group === undefined) return { links: await call(endpoint, async () => await client.heal()) }
  const members = new Set(linksOf(view, group))
  const faults: FaultsJson = await call(endpoint, async () => await client.faults())
  const healed = new Set<string>()
  // The cuts of the group and of every group inside it (all of whose links are the group's).
  for (const cut of new Set([...faults.partitions, ...faults.blackholes])) {
    const links = view.groups.get(cut) ?? []
    if (cut === group || (links.length > 0 && links.every(l => members.has(l)))) {
      for (const name of await call(endpoint, async () => await client.heal(cut))) if (members.has(name) || cut === group) healed.add(name)
    }
  }
  await call(endpoint, async () => {
    await Promise.all(view.proxies.filter(p => members.has(p.name)).flatMap(p => p.toxics.map(async t => {
      await client.removeToxic(p.name, t.name)
      healed.add(p.name)
    })))
  })
  return { group, links: [...healed].sort() }
}

/**
 * Heals the links of the lab in DIR: without a group everything (every partition and blackhole
 * lifted, every toxic removed, every link enabled: the fault proxy's heal); with one, the cuts of
 * that group and of the groups inside it, and the toxics on its links.
 */
export async function healFaults (options: HealFaultsOptions = {}): Promise<HealedFaults> {
  const healed = await healFaultsAt(await open(options), options.group)
  await recordFault(options, { atMs: Date.now(), source: options.source ?? 'api', action: 'heal', ...(options.group === undefined ? {} : { group: options.group }), links: healed.links })
  return healed
}

function journalOf (location: FaultLabLocation): string {
  return join(resolve(location.cwd ?? process.cwd(), location.dir ?? labDefaults.dir), labDefaults.faultJournalFileName)
}

/**
 * Appends one entry to the lab's fault timeline (`DIR/faults.jsonl`, one JSON object a line),
 * which the console shows and which stays for later. Every way a fault reaches the lab goes
 * through `applyFault` / `healFaults` (the CLI, the console, scenarios) or calls this (the
 * topology's faults). A timeline that cannot be written does not undo the fault: it is set.
 */
export async function recordFault (location: FaultLabLocation, entry: FaultJournalEntry): Promise<void> {
  await appendFile(journalOf(location), JSON.stringify(entry) + '\n', { mode: 0o600 }).catch(() => {})
}

/** The lab's fault timeline, oldest first (lines that cannot be read are left out). */
export async function readFaultJournal (location: FaultLabLocation = {}): Promise<FaultJournalEntry[]> {
  const text = await readFile(journalOf(location), 'utf8').catch(() => '')
  const entries: FaultJournalEntry[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    try {
      entries.push(JSON.parse(line) as FaultJournalEntry)
    } catch {
      // A line being written, or torn by a crash: the rest still reads.
    }
  }
  return entries
}

/** Every link of the lab in DIR and what is set on it. */
export async function listFaults (location: FaultLabLocation = {}): Promise<FaultListing> {
  const view = await open(location)
  const faults = await call(view.endpoint, async () => await view.client.faults())
  const byName = new Map<string, string[]>()
  for (const [group, names] of view.groups) for (const name of names) byName.set(name, [...(byName.get(name) ?? []), group])
  return {
    endpoint: view.endpoint,
    seed: faults.seed,
    healed: faults.healed,
    partitions: faults.partitions,
    blackholes: faults.blackholes,
    links: view.proxies.sort((a, b) => a.name.localeCompare(b.name)).map(p => {
      const set = faults.proxies[p.name]
      return {
        name: p.name,
        listen: p.listen,
        upstream: p.upstream,
        groups: byName.get(p.name) ?? [],
        enabled: p.enabled,
        partitioned: set?.partitioned ?? false,
        blackholed: set?.blackholed ?? false,
        toxics: p.toxics
      }
    }),
    groups: describeView(view)
  }
}
