/**
 * How the runner sets and lifts network faults: with the lab's own fault functions (`applyFault`,
 * `healFaults`: what `hsmlab fault ...` does, docs/lab.md "Faults"), which drive the lab's fault
 * proxy through its Toxiproxy-compatible API. Partitions and blackholes are the proxy's group
 * operations; latency and reset_peer are toxics on both directions of every link of a group, or
 * of the links between two groups. A toxic with a duration is removed by name from the links it
 * was set on (`latency_<stream>`, `reset_peer_<stream>`, as `applyFault` names them), so the
 * other toxics on those links stay: one toxic of each type per link at a time, a second one of a
 * type replaces the first.
 */
import { FaultClient } from '@hsmlab/fault-proxy'
import type { ProxyJson } from '@hsmlab/fault-proxy'
import { groupIndex, linksBetween } from '../fault-links.js'
import { applyFault, healFaults, recordFault } from '../faults.js'
import { toxicName } from '../fault-vocabulary.js'
import type { FaultLinks as LinkSelector, ToxicFault, ToxicFaultType } from '../fault-vocabulary.js'

/** Toxics set by one `addToxics`, to remove later. */
interface AddedToxics { type: ToxicFaultType, links: string[] }

/** Sets and lifts faults on the links of the lab in `dir`; see the module comment. */
export class FaultDriver {
  readonly endpoint: string
  private readonly dir: string
  private readonly client: FaultClient
  private readonly toxics = new Map<number, AddedToxics>()
  private nextToxic = 1

  constructor (endpoint: string, dir: string) {
    this.endpoint = endpoint
    this.dir = dir
    this.client = new FaultClient({ url: endpoint })
  }

  /** The fault proxy's seed (its jitter and toxicity draws). */
  async seed (): Promise<number> {
    return await this.client.seed()
  }

  /** Cuts every link of a group (connections reset, new ones refused); resolves with the links cut. */
  async partition (group: string): Promise<string[]> {
    return (await applyFault({ dir: this.dir, source: 'scenario', fault: { type: 'partition', group } })).links
  }

  /** Drops every byte on every link of a group, silently; resolves with the links. */
  async blackhole (group: string): Promise<string[]> {
    return (await applyFault({ dir: this.dir, source: 'scenario', fault: { type: 'blackhole', group } })).links
  }

  /** Lifts the cuts of a group (and of the groups inside it) and the toxics on its links. */
  async heal (group: string): Promise<string[]> {
    return (await healFaults({ dir: this.dir, source: 'scenario', group })).links
  }

  /** Lifts every fault: partitions, blackholes, toxics (the proxy's `heal`). */
  async healAll (): Promise<void> {
    await healFaults({ dir: this.dir, source: 'scenario' })
    this.toxics.clear()
  }

  /** Sets a latency or reset_peer fault (its toxic on both directions of the links it names); resolves with an id for `removeToxics` and the links. */
  async addToxics (fault: ToxicFault): Promise<{ id: number, links: string[] }> {
    const { links } = await applyFault({ dir: this.dir, source: 'scenario', fault })
    const id = this.nextToxic++
    this.toxics.set(id, { type: fault.type, links })
    return { id, links }
  }

  /** Removes the toxics of one `addToxics` call (those still there). */
  async removeToxics (id: number): Promise<void> {
    const added = this.toxics.get(id)
    this.toxics.delete(id)
    if (added === undefined) return
    await Promise.all(added.links.flatMap(link => (['upstream', 'downstream'] as const).map(async stream => {
      await this.client.removeToxic(link, toxicName(added.type, stream)).catch(() => { /* gone already: healed, or replaced and removed */ })
    })))
    await recordFault({ dir: this.dir }, { atMs: Date.now(), source: 'scenario', action: 'heal', toxic: added.type, links: added.links })
  }

  /** For each selector that names no link of the lab, why; empty when all name some. */
  async unknownSelectors (selectors: LinkSelector[]): Promise<string[]> {
    const proxies = Object.values(await this.client.list())
    return selectors
      .filter(selector => linksOf(proxies, selector).length === 0)
      .map(selector => `${describeSelector(selector)} names no link of the lab`)
  }

  /** Every group of the lab's links, for messages. */
  async groups (): Promise<string[]> {
    return [...groupIndex(Object.values(await this.client.list()).map(p => ({ name: p.name, groups: p.hsmlab?.groups ?? [] }))).keys()]
  }
}

/** A selector as a person reads it. */
export function describeSelector (selector: LinkSelector): string {
  return 'group' in selector ? `group ${selector.group}` : `the links between ${selector.between[0]} and ${selector.between[1]}`
}

/** The links a selector names: every link of a group, or the links between two groups (as `hsmlab fault` counts them). */
export function linksOf (proxies: ProxyJson[], selector: LinkSelector): string[] {
  const links = proxies.map(p => ({ name: p.name, groups: p.hsmlab?.groups ?? [] }))
  if ('group' in selector) return groupIndex(links).get(selector.group) ?? []
  return linksBetween(links, selector.between[0], selector.between[1])
}
