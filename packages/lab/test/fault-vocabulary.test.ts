/**
 * The fault vocabulary (fault-vocabulary.ts), in process: each fault's fields are checked once and
 * become the toxics the fault proxy's API takes; a fault written in a topology, in a scenario and
 * on the `hsmlab fault` command line is one and the same fault in normal form, whichever spelling
 * each format uses; each format keeps its own limits. A property test draws faults in normal
 * form, writes them in each file format and reads them back.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { TOXIC_TYPES } from '@hsmlab/fault-proxy'
import { FAULTS, FAULT_TYPES, toxicsOf } from '../src/fault-vocabulary.js'
import type { LabFault } from '../src/fault-vocabulary.js'
import { parseScenario, parseTopology } from '../src/index.js'
import { LAB_ERR_USAGE } from '../src/errors.js'

const regions = [
  { name: 'us-east-1', clusters: [{ name: 'primary', hsms: 2, activate: { admin: 'Admin1234' } }] },
  { name: 'us-west-2', clusters: [{ name: 'dr', hsms: 2, cloneOf: { region: 'us-east-1', cluster: 'primary' } }] }
]

/** A fault as a topology reads it. */
function fromTopology (raw: Record<string, unknown>): LabFault | undefined {
  return parseTopology({ regions, faults: [raw] }).faults?.[0]
}

/** A fault as a scenario reads it (without its schedule's `durationMs`). */
function fromScenario (raw: Record<string, unknown>): unknown {
  const scenario = parseScenario({ name: 's', durationMs: 1000, workload: [{ ops: [{ op: 'createKey', cluster: 'us-east-1/primary' }] }], schedule: [{ atMs: 0, fault: raw }] })
  const entry = scenario.schedule[0]
  return entry?.action === 'fault' ? entry.fault : undefined
}

function usageMessage (work: () => unknown): string {
  try {
    work()
  } catch (err) {
    expect((err as { code?: string }).code).toBe(LAB_ERR_USAGE)
    return (err as Error).message
  }
  return ''
}

describe('the fault vocabulary', () => {
  it('defines every fault once: a cut or toxics of types the fault proxy has', () => {
    expect(FAULT_TYPES).toEqual(['partition', 'blackhole', 'latency', 'reset_peer'])
    for (const type of FAULT_TYPES) {
      const definition = FAULTS[type]
      if (definition.kind === 'toxic') expect(TOXIC_TYPES).toContain(type)
      for (const field of definition.fields) expect(['ms', 'fraction']).toContain(field.unit)
    }
  })

  it('turns latency and reset_peer into one toxic on each direction, with their defaults', () => {
    expect(toxicsOf({ type: 'latency', between: ['us-east-1', 'us-west-2'], ms: 150, jitter: 30 })).toEqual([
      { name: 'latency_upstream', type: 'latency', stream: 'upstream', attributes: { latency: 150, jitter: 30 }, toxicity: 1 },
      { name: 'latency_downstream', type: 'latency', stream: 'downstream', attributes: { latency: 150, jitter: 30 }, toxicity: 1 }
    ])
    expect(toxicsOf({ type: 'reset_peer', group: 'wan', toxicity: 0.5 })).toEqual([
      { name: 'reset_peer_upstream', type: 'reset_peer', stream: 'upstream', attributes: { timeout: 0 }, toxicity: 0.5 },
      { name: 'reset_peer_downstream', type: 'reset_peer', stream: 'downstream', attributes: { timeout: 0 }, toxicity: 0.5 }
    ])
  })

  it('refuses numbers out of their unit\'s range, naming the command-line flag', () => {
    expect(usageMessage(() => toxicsOf({ type: 'latency', group: 'wan', ms: -1 }))).toBe('latency --ms must be a whole number of milliseconds from 0 to 3600000, not -1')
    expect(usageMessage(() => toxicsOf({ type: 'latency', group: 'wan', ms: 1, jitter: 1.5 }))).toBe('latency --jitter must be a whole number of milliseconds from 0 to 3600000, not 1.5')
    expect(usageMessage(() => toxicsOf({ type: 'reset_peer', group: 'wan', timeoutMs: 3_600_001 }))).toBe('reset-peer --timeout-ms must be a whole number of milliseconds from 0 to 3600000, not 3600001')
    expect(usageMessage(() => toxicsOf({ type: 'reset_peer', group: 'wan', toxicity: 2 }))).toBe('toxicity must be a number from 0 to 1, not 2')
  })

  it('reads each format\'s spelling as the same fault', () => {
    // A topology: reset_peer or reset-peer, jitter; a scenario: reset-peer, jitterMs, every field filled in.
    const latency: LabFault = { type: 'latency', between: ['us-east-1', 'us-west-2'], ms: 150, jitter: 30, toxicity: 1 }
    expect(fromTopology({ type: 'latency', between: ['us-east-1', 'us-west-2'], ms: 150, jitter: 30, toxicity: 1 })).toEqual(latency)
    expect(fromScenario({ type: 'latency', between: ['us-east-1', 'us-west-2'], ms: 150, jitterMs: 30 })).toEqual(latency)
    const reset: LabFault = { type: 'reset_peer', group: 'wan', timeoutMs: 100, toxicity: 1 }
    expect(fromTopology({ type: 'reset_peer', group: 'wan', timeoutMs: 100, toxicity: 1 })).toEqual(reset)
    expect(fromTopology({ type: 'reset-peer', group: 'wan', timeoutMs: 100, toxicity: 1 })).toEqual(reset)
    expect(fromScenario({ type: 'reset-peer', group: 'wan', timeoutMs: 100 })).toEqual(reset)
    expect(fromTopology({ type: 'partition', group: 'us-west-2' })).toEqual({ type: 'partition', group: 'us-west-2' })
    expect(fromScenario({ type: 'blackhole', group: 'us-west-2' })).toEqual({ type: 'blackhole', group: 'us-west-2' })
    // Each format refuses the other's field names.
    expect(() => fromTopology({ type: 'latency', group: 'wan', ms: 1, jitterMs: 2 })).toThrow('faults[0]: unknown field "jitterMs" (allowed: type, group, between, ms, jitter, toxicity)')
    expect(() => fromScenario({ type: 'latency', group: 'wan', ms: 1, jitter: 2 })).toThrow('schedule[0].fault: unknown field "jitter" (allowed: type, group, between, ms, jitterMs, toxicity, durationMs)')
    expect(() => fromScenario({ type: 'reset_peer', group: 'wan' })).toThrow('schedule[0].fault.type: must be one of partition, blackhole, latency, reset-peer, flap, not "reset_peer"')
  })

  it('keeps each format\'s limits: a scenario\'s delays stop at a minute and its toxicity is above 0, a topology\'s at an hour and from 0', () => {
    expect(() => fromScenario({ type: 'latency', group: 'wan', ms: 60_001 })).toThrow('schedule[0].fault.ms: must be a whole number from 0 to 60000, not 60001')
    expect(() => fromScenario({ type: 'latency', group: 'wan', ms: 1, toxicity: 0 })).toThrow('schedule[0].fault.toxicity: must be a number above 0 and at most 1, not 0')
    expect(fromTopology({ type: 'latency', group: 'wan', ms: 60_001, toxicity: 0 })).toEqual({ type: 'latency', group: 'wan', ms: 60_001, toxicity: 0 })
  })

  it('reads back any fault it writes, in either file format (property)', () => {
    const ms = fc.integer({ min: 0, max: 60_000 })
    const toxicity = fc.double({ min: 0.01, max: 1, noNaN: true })
    const links = fc.oneof(fc.constant({ group: 'wan' }), fc.constant({ between: ['us-east-1', 'us-west-2'] as [string, string] }))
    const fault: fc.Arbitrary<LabFault> = fc.oneof(
      fc.record({ type: fc.constantFrom('partition' as const, 'blackhole' as const), group: fc.constantFrom('us-east-1', 'us-west-2/dr', 'wan') }),
      fc.tuple(links, ms, ms, toxicity).map(([at, m, jitter, t]): LabFault => ({ type: 'latency', ...at, ms: m, jitter, toxicity: t })),
      fc.tuple(links, ms, toxicity).map(([at, timeoutMs, t]): LabFault => ({ type: 'reset_peer', ...at, timeoutMs, toxicity: t }))
    )
    fc.assert(fc.property(fault, f => {
      expect(fromTopology({ ...f })).toEqual(f)
      const scenario: Record<string, unknown> = { ...f, type: f.type === 'reset_peer' ? 'reset-peer' : f.type }
      if (f.type === 'latency') { scenario.jitterMs = f.jitter; delete scenario.jitter }
      expect(fromScenario(scenario)).toEqual(f)
    }), { numRuns: 200, interruptAfterTimeLimit: 3000 })
  })
})
