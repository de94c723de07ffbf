/**
 * Invariant `cluster-agreement`: the HSMs of each cluster agree once the lab settled. Every HSM
 * of a cluster holds the same keys (the same handles), and findAllKeys gives every crypto user
 * the same keys and the same hash on each of them (the hash covers every key of the HSM, as the
 * AWS documentation uses it to see whether HSMs are in sync).
 */
import type { CheckInput, Violation } from './check-input.js'
import { hsmsOf } from './check-input.js'

export const CLUSTER_AGREEMENT = 'cluster-agreement' as const

export function checkClusterAgreement ({ observation }: CheckInput): Violation[] {
  const out: Violation[] = []
  const fail = (detail: string): void => { out.push({ invariant: CLUSTER_AGREEMENT, detail }) }
  for (const cluster of observation.clusters) {
    const hsms = hsmsOf(observation, cluster.ref)
    const first = hsms[0]
    if (first === undefined) continue
    const handles = (h: typeof first): Set<number> => new Set(h.keys.map(k => k.handle))
    const reference = handles(first)
    for (const hsm of hsms.slice(1)) {
      const here = handles(hsm)
      const missing = [...reference].filter(x => !here.has(x))
      const extra = [...here].filter(x => !reference.has(x))
      if (missing.length > 0 || extra.length > 0) {
        fail(`${hsm.name} and ${first.name} hold different keys: ${missing.length > 0 ? `not on ${hsm.name}: ${missing.join(', ')}` : ''}${missing.length > 0 && extra.length > 0 ? '; ' : ''}${extra.length > 0 ? `not on ${first.name}: ${extra.join(', ')}` : ''}`)
      }
    }
    const userNames = new Set(hsms.flatMap(h => h.keyHashes.map(k => k.userName.toLowerCase())))
    for (const name of userNames) {
      const views = hsms.map(h => ({ hsm: h.name, view: h.keyHashes.find(k => k.userName.toLowerCase() === name) }))
      const describe = (v: typeof views[number]): string => v.view === undefined ? 'no keys' : `hash ${v.view.hash ?? '-'}, ${v.view.handles.length} keys`
      const distinct = new Set(views.map(describe))
      if (distinct.size > 1) fail(`findAllKeys for ${name} differs across ${cluster.ref}: ${views.map(v => `${v.hsm}: ${describe(v)}`).join('; ')}`)
    }
  }
  return out
}
