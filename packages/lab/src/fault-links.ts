/**
 * The links of a lab, each a proxy of the lab's fault proxy, with the names a person reads and the
 * groups `hsmlab fault` cuts (docs/lab.md "Faults"). Pure functions: the same plan is made from a
 * running lab (HSM ids, addresses and ports known) and from a topology alone (to check the faults
 * it declares).
 *
 * | link | name | explicit groups |
 * | --- | --- | --- |
 * | client → HSM i | `<region>/<cluster>/hsm-<i>` | the HSM's id |
 * | HSM i dials HSM j (replication) | `peer/<region>/<cluster>/hsm-<i>->hsm-<j>` | `<region>/<cluster>/hsm-<i>`, `…/hsm-<j>`, both ids |
 * | control plane → HSM i | `control/<region>/<cluster>/hsm-<i>` | none |
 * | control plane of A → of B | `wan/<A>-><B>` | `<A>`, `<B>` |
 *
 * A proxy also belongs to every `/` prefix of its name, so a group is the set of links that cross
 * its boundary: `us-west-2` holds the client links into the region and the WAN links to and from
 * it, not the links inside it (which begin with `peer/` or `control/`); `us-east-1/primary` the
 * client links into the cluster; `us-east-1/primary/hsm-0` (or the HSM's id) its client link and
 * its peer links. Prefixes give more: `peer/us-east-1/primary` is the cluster's replication,
 * `wan` every link between regions, `control` every control plane's links to its HSMs.
 *
 * `i` is the HSM's server id in its cluster's CMU configuration (DescribeClusters order).
 */
import { effectiveGroups } from '@hsmlab/fault-proxy'

/** What a link carries. */
export type LinkKind = 'client' | 'peer' | 'control' | 'wan'

/** One link of the lab: a proxy of its fault proxy. */
export interface PlannedLink {
  name: string
  kind: LinkKind
  /** The address its proxy listens on (the port is the recorded one, else any). */
  listenHost: string
  /** `host:port` it forwards to: an HSM's own address, or a control plane's API. */
  upstream: string
  /** Its explicit groups (beyond the `/` prefixes of its name). */
  groups: string[]
  /** The region of the HSM reached, or for a WAN link the region it starts from. */
  region: string
  /** The HSM it reaches (client, peer, control links). */
  hsmId?: string
  /** Who dials it: `client`, `control-plane`, an HSM's id (peer), or a region (WAN). */
  from: string
}

/** One HSM as the plan needs it. */
export interface LinkPlanHsm {
  /** Its HsmId; undefined when planning from a topology (the HSM does not exist yet). */
  id?: string
  /** `host:port` where it listens (its EniIp and port); '' when unknown. */
  address: string
}

/** What the plan is made from. */
export interface LinkPlanInput {
  regions: Array<{
    name: string
    /** `host:port` of its control plane's API; '' when unknown. */
    controlPlane: string
    clusters: Array<{ name: string, hsms: LinkPlanHsm[] }>
  }>
}

/** The prefix of the names of peer links. */
export const PEER_LINK_PREFIX = 'peer'
/** The prefix of the names of control-plane → HSM links. */
export const CONTROL_LINK_PREFIX = 'control'
/** The prefix of the names of links between regions. */
export const WAN_LINK_PREFIX = 'wan'

/** The name of the client link of HSM `index` of a cluster (also that HSM's group). */
export function hsmGroupName (region: string, cluster: string, index: number): string {
  return `${region}/${cluster}/hsm-${index}`
}

function hostOf (address: string): string {
  const at = address.lastIndexOf(':')
  return at <= 0 ? '127.0.0.1' : address.slice(0, at).replace(/^\[|\]$/g, '')
}

/** Every link of a lab, in a stable order: per region, per cluster, client, peer and control links; then the WAN links. */
export function planLinks (input: LinkPlanInput): PlannedLink[] {
  const links: PlannedLink[] = []
  for (const region of input.regions) {
    for (const cluster of region.clusters) {
      cluster.hsms.forEach((hsm, i) => {
        const group = hsmGroupName(region.name, cluster.name, i)
        links.push({
          name: group,
          kind: 'client',
          listenHost: hostOf(hsm.address),
          upstream: hsm.address,
          groups: hsm.id === undefined ? [] : [hsm.id],
          region: region.name,
          ...(hsm.id === undefined ? {} : { hsmId: hsm.id }),
          from: 'client'
        })
      })
      cluster.hsms.forEach((from, i) => {
        cluster.hsms.forEach((to, j) => {
          if (i === j) return
          const fromGroup = hsmGroupName(region.name, cluster.name, i)
          const toGroup = hsmGroupName(region.name, cluster.name, j)
          links.push({
            name: `${PEER_LINK_PREFIX}/${region.name}/${cluster.name}/hsm-${i}->hsm-${j}`,
            kind: 'peer',
            listenHost: hostOf(to.address),
            upstream: to.address,
            groups: [fromGroup, toGroup, ...(from.id === undefined ? [] : [from.id]), ...(to.id === undefined ? [] : [to.id])],
            region: region.name,
            ...(to.id === undefined ? {} : { hsmId: to.id }),
            from: from.id ?? fromGroup
          })
        })
      })
      cluster.hsms.forEach((hsm, i) => {
        links.push({
          name: `${CONTROL_LINK_PREFIX}/${region.name}/${cluster.name}/hsm-${i}`,
          kind: 'control',
          listenHost: hostOf(hsm.address),
          upstream: hsm.address,
          groups: [],
          region: region.name,
          ...(hsm.id === undefined ? {} : { hsmId: hsm.id }),
          from: 'control-plane'
        })
      })
    }
  }
  for (const a of input.regions) {
    for (const b of input.regions) {
      if (a === b) continue
      links.push({
        name: `${WAN_LINK_PREFIX}/${a.name}->${b.name}`,
        kind: 'wan',
        listenHost: hostOf(a.controlPlane),
        upstream: b.controlPlane,
        groups: [a.name, b.name],
        region: a.name,
        from: a.name
      })
    }
  }
  return links
}

/** Every group a link belongs to: its explicit groups and the `/` prefixes of its name (as the fault proxy counts them). */
export function groupsOf (link: Pick<PlannedLink, 'name' | 'groups'>): string[] {
  return effectiveGroups(link.name, link.groups)
}

/** Every group of a set of links, sorted, each with the names of its links. */
export function groupIndex (links: ReadonlyArray<Pick<PlannedLink, 'name' | 'groups'>>): Map<string, string[]> {
  const index = new Map<string, string[]>()
  for (const link of links) {
    for (const group of groupsOf(link)) {
      const list = index.get(group)
      if (list === undefined) index.set(group, [link.name])
      else list.push(link.name)
    }
  }
  return new Map([...index].sort(([a], [b]) => a.localeCompare(b)))
}

/**
 * The links between two groups: those in both. For two regions, the WAN links between them; for
 * two HSMs of a cluster, the peer links between them. Empty when one group holds the other's
 * links only because it contains it (a region and one of its clusters are not "between").
 */
export function linksBetween (links: ReadonlyArray<Pick<PlannedLink, 'name' | 'groups'>>, a: string, b: string): string[] {
  const index = groupIndex(links)
  const inA = new Set(index.get(a) ?? [])
  const inB = index.get(b) ?? []
  if (inA.size === 0 || inB.length === 0) return []
  const both = inB.filter(name => inA.has(name))
  // One group inside the other (us-east-1 and us-east-1/primary): nothing lies between them.
  if (both.length === inA.size || both.length === inB.length) return []
  return both
}

/**
 * The groups a person names in `hsmlab fault`, for help and error messages: regions, clusters,
 * HSMs (by name and id), then the link families.
 */
export function describeGroups (links: ReadonlyArray<Pick<PlannedLink, 'name' | 'groups' | 'kind'>>): string {
  const index = groupIndex(links)
  const names = [...index.keys()]
  const regions = names.filter(g => /^[a-z]{2}(-[a-z]+)+-\d$/.test(g))
  const clusters = names.filter(g => /^[a-z]{2}(-[a-z]+)+-\d\/[^/]+$/.test(g))
  const hsms = names.filter(g => /^[a-z]{2}(-[a-z]+)+-\d\/[^/]+\/hsm-\d+$/.test(g))
  const ids = names.filter(g => /^hsm-[2-7a-zA-Z]{11,16}$/.test(g))
  const families = names.filter(g => g === WAN_LINK_PREFIX || g === PEER_LINK_PREFIX || g === CONTROL_LINK_PREFIX)
  const parts = [
    regions.length > 0 ? `regions: ${regions.join(', ')}` : '',
    clusters.length > 0 ? `clusters: ${clusters.join(', ')}` : '',
    hsms.length > 0 ? `HSMs: ${hsms.join(', ')}${ids.length > 0 ? ` (or their ids: ${ids.join(', ')})` : ''}` : '',
    families.length > 0 ? `link families: ${families.join(', ')} (and any prefix of a link's name, or a link's name)` : ''
  ].filter(p => p !== '')
  return parts.join('; ')
}
