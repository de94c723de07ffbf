/**
 * Invariant `failures-have-causes`: every operation ended (none is left without an outcome), and
 * every one that failed or whose outcome is unknown carries a cause a person can act on; an
 * operation sent to several HSMs names a cause for each HSM that did not acknowledge it.
 */
import type { CheckInput, Violation } from './check-input.js'
import { opName } from './check-input.js'

export const FAILURES_HAVE_CAUSES = 'failures-have-causes' as const

const EMPTY = new Set(['', 'error', 'undefined', 'null', '[object object]', 'unknown', 'unknown error'])

function meaningful (cause: string | undefined): boolean {
  return cause !== undefined && !EMPTY.has(cause.trim().replace(/^\[[A-Z_]+\]\s*/, '').toLowerCase())
}

export function checkFailuresHaveCauses ({ history }: CheckInput): Violation[] {
  const out: Violation[] = []
  const fail = (detail: string): void => { out.push({ invariant: FAILURES_HAVE_CAUSES, detail }) }
  for (const r of history) {
    if (r.outcome === 'invoked') { fail(`${opName(r)} never ended`); continue }
    if (r.outcome === 'ok') continue
    if (!meaningful(r.cause)) fail(`${opName(r)} ${r.outcome === 'failed' ? 'failed' : 'has an unknown outcome'} without a cause (${JSON.stringify(r.cause ?? null)})`)
    for (const c of r.causes ?? []) {
      if (!meaningful(c.cause)) fail(`${opName(r)}: ${c.target} did not acknowledge it, and gave no cause (${JSON.stringify(c.cause)})`)
    }
  }
  return out
}
