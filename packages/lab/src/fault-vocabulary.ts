/**
 * The lab's one fault vocabulary, in the spirit of TigerBeetle's Vortex (`src/testing/vortex/`),
 * where a network fault is defined once: every fault's name, its fields and their units, how a
 * file or a command line that names one is checked, and the toxics it becomes on the fault proxy.
 * A topology's `faults`, a scenario's schedule, `hsmlab fault` (fault-command.ts, faults.ts) and
 * the scenario runner's fault driver all go through it, and all hold a fault in one normal form,
 * `LabFault`.
 *
 * Each of those formats has spelt faults its own way since before this module (`reset_peer` in a
 * topology, `reset-peer` in a scenario and on the command line; `jitter` and `jitterMs`) and has
 * its own limits (a scenario's delays stop at a minute, a topology's at an hour; a scenario's
 * toxicity is above 0): files written for them keep working, so each format is a `FaultDialect`
 * that says only that, while the fault's structure, its fields and its toxics are said here once.
 *
 * A new fault: a member of `LabFault` and an entry of `FAULTS` (the compiler asks for both), then
 * its words in each dialect (topology.ts, scenario/scenario-file.ts, fault-command.ts).
 */
import type { Direction, ToxicAttributes } from '@hsmlab/fault-proxy'
import { LabError, LAB_ERR_USAGE } from './errors.js'
import type { FileChecker, Json } from './file-checker.js'

/** Which links a toxic goes on: every link of a group, or the links between two groups (in both). */
export type FaultLinks = { group: string } | { between: [string, string] }

/** A fault on the lab's links, in normal form: what `hsmlab fault` sets, a topology's `faults` declare and a scenario schedules. */
export type LabFault =
  /** Every link of the group: connections reset, new ones refused (fails fast), until healed. */
  | { type: 'partition', group: string }
  /** Every link of the group: data dropped both ways, connections left open (fails slow), until healed. */
  | { type: 'blackhole', group: string }
  /**
   * The links, both directions: each byte waits `ms` ± `jitter` milliseconds (a round trip 2 × ms
   * more); on a connection with probability `toxicity` (default 1), drawn from the lab's seed.
   */
  | (FaultLinks & { type: 'latency', ms: number, jitter?: number, toxicity?: number })
  /** The links: a connection is reset (TCP RST) `timeoutMs` after it next carries data (with probability `toxicity`). */
  | (FaultLinks & { type: 'reset_peer', timeoutMs?: number, toxicity?: number })

/** A fault's name in normal form. */
export type FaultType = LabFault['type']

/** The faults that become toxics (the others are the proxy's group cuts). */
export type ToxicFault = Extract<LabFault, { type: ToxicFaultType }>
export type ToxicFaultType = 'latency' | 'reset_peer'

/** The longest delay a fault takes (latency, jitter, reset_peer's timeout): an hour, in milliseconds. */
export const FAULT_MS_MAX = 3_600_000

/** A number a fault carries, in normal form. */
export type FaultFieldName = 'ms' | 'jitter' | 'timeoutMs' | 'toxicity'

/** A number a fault carries: its unit, whether it must be given, and its value when it is not. */
export interface FaultField {
  name: FaultFieldName
  /** `ms`: whole milliseconds from 0; `fraction`: a probability from 0 to 1. */
  unit: 'ms' | 'fraction'
  required: boolean
  default: number
}

/** One toxic a fault sets on one direction of one link, as the fault proxy's API takes it. */
export type FaultToxic = {
  [T in ToxicFaultType]: { name: string, type: T, stream: Direction, attributes: ToxicAttributes[T], toxicity: number }
}[ToxicFaultType]

/** How a fault is set: a group cut of the proxy, or toxics made from its fields. */
type FaultDefinition<T extends FaultType> = T extends ToxicFaultType
  ? { kind: 'toxic', fields: readonly FaultField[], attributes: (fault: Extract<LabFault, { type: T }>) => ToxicAttributes[T] }
  : { kind: 'cut', fields: readonly FaultField[] }

const TOXICITY: FaultField = { name: 'toxicity', unit: 'fraction', required: false, default: 1 }

/** Every fault, once. */
export const FAULTS: { readonly [T in FaultType]: FaultDefinition<T> } = {
  partition: { kind: 'cut', fields: [] },
  blackhole: { kind: 'cut', fields: [] },
  latency: {
    kind: 'toxic',
    fields: [{ name: 'ms', unit: 'ms', required: true, default: 0 }, { name: 'jitter', unit: 'ms', required: false, default: 0 }, TOXICITY],
    attributes: fault => ({ latency: fault.ms, jitter: fault.jitter ?? 0 })
  },
  reset_peer: {
    kind: 'toxic',
    fields: [{ name: 'timeoutMs', unit: 'ms', required: false, default: 0 }, TOXICITY],
    attributes: fault => ({ timeout: fault.timeoutMs ?? 0 })
  }
}

/** Every fault's name in normal form, in the order messages list them. */
export const FAULT_TYPES = Object.keys(FAULTS) as FaultType[]

/** True for a fault that becomes toxics (latency, reset_peer). */
export function isToxicFault (fault: LabFault): fault is ToxicFault {
  // Own entries only: a fault from a script may name anything.
  return Object.hasOwn(FAULTS, fault.type) && FAULTS[fault.type].kind === 'toxic'
}

/** The name of the toxic a fault of `type` sets on one direction of a link (one of each type per link: a second replaces the first). */
export function toxicName (type: ToxicFaultType, stream: Direction): string {
  return `${type}_${stream}`
}

/** How one format (a topology file, a scenario file, the command line) spells faults. */
export interface FaultSpelling {
  /** The words this format names each fault with: the first is the one its messages list, the others are also taken. */
  words: { readonly [T in FaultType]: readonly string[] }
  /** How this format names a field, when not by its normal name; `null`: the format does not have it. */
  fieldNames?: Partial<Record<FaultFieldName, string | null>>
}

/** How a file format spells faults and bounds their numbers. */
export interface FaultDialect extends FaultSpelling {
  /** Fill in the fields left out with their defaults. */
  fillDefaults: boolean
  /** Checks a number of `field`'s unit: its value, undefined when absent and not required, null (a problem noted) when wrong or missing. */
  number: (c: FileChecker, path: string, value: unknown, field: FaultField) => number | undefined | null
  /** Checks a group name (a problem noted when it is wrong). */
  group: (c: FileChecker, path: string, value: unknown) => string | undefined
  /** Checks `between` (a problem noted when it is wrong). */
  between: (c: FileChecker, path: string, value: unknown) => [string, string] | undefined
  /** Notes a fault type the format does not have; `listed` are the words it has. */
  unknownType: (c: FileChecker, path: string, raw: unknown, listed: readonly string[]) => void
}

/** What a format adds around a fault (a scenario: `durationMs`, and its `flap` schedule). */
export interface FaultExtras {
  /** More words listed as fault types in messages (checked by the caller before). */
  words?: readonly string[]
  /** More fields the object may have. */
  fields?: readonly string[]
  /** Checks those fields once the object is known; false stops the check there. */
  check?: (f: Json) => boolean
}

/** The fault type a word of the dialect names, if any. */
export function faultTypeOf (dialect: FaultSpelling, word: unknown): FaultType | undefined {
  // A scan of own entries: the word comes from a file or a command line, and a plain object would
  // answer `constructor` or `toString`.
  return FAULT_TYPES.find(type => typeof word === 'string' && dialect.words[type].includes(word))
}

/** The word a dialect writes a fault type with. */
export function faultWord (dialect: FaultSpelling, type: FaultType): string {
  return dialect.words[type][0] ?? type
}

/** The name a dialect gives a field; undefined when it does not have it. */
export function fieldName (dialect: FaultSpelling, field: FaultFieldName): string | undefined {
  const name = dialect.fieldNames?.[field]
  return name === null ? undefined : name ?? field
}

/** The fields of a fault type as a dialect has them. */
export function fieldsIn (dialect: FaultSpelling, type: FaultType): Array<{ field: FaultField, name: string }> {
  return FAULTS[type].fields.flatMap(field => {
    const name = fieldName(dialect, field.name)
    return name === undefined ? [] : [{ field, name }]
  })
}

/** Every field a fault of a dialect may have, for messages: milliseconds first, then fractions. */
export function allFaultFields (dialect: FaultSpelling): string[] {
  const all = FAULT_TYPES.flatMap(type => fieldsIn(dialect, type))
  const names = [...all.filter(f => f.field.unit === 'ms'), ...all.filter(f => f.field.unit !== 'ms')].map(f => f.name)
  return ['type', 'group', 'between', ...new Set(names)]
}

/**
 * Checks one fault as a file of `dialect` writes it, noting each problem with its place in `c`;
 * returns it in normal form, or undefined when it has a problem.
 */
export function checkFault (c: FileChecker, path: string, raw: unknown, dialect: FaultDialect, extras: FaultExtras = {}): LabFault | undefined {
  const type = faultTypeOf(dialect, (raw as Json | null)?.type)
  if (type === undefined) {
    dialect.unknownType(c, path, raw, [...FAULT_TYPES.map(t => faultWord(dialect, t)), ...(extras.words ?? [])])
    return undefined
  }
  const definition = FAULTS[type]
  const fields = fieldsIn(dialect, type)
  const f = c.object(path, raw, ['type', 'group', ...(definition.kind === 'toxic' ? ['between'] : []), ...fields.map(x => x.name), ...(extras.fields ?? [])])
  if (f === undefined || extras.check?.(f) === false) return undefined
  if (definition.kind === 'cut') {
    const group = dialect.group(c, `${path}.group`, f.group)
    return group === undefined ? undefined : { type: type as 'partition' | 'blackhole', group }
  }
  const at = linksIn(c, path, f, dialect)
  let ok = at !== undefined
  const values: Partial<Record<FaultFieldName, number>> = {}
  for (const { field, name } of fields) {
    const value = dialect.number(c, `${path}.${name}`, f[name], field)
    if (value === null) ok = false
    else if (value !== undefined) values[field.name] = value
    else if (dialect.fillDefaults) values[field.name] = field.default
  }
  if (!ok || at === undefined) return undefined
  return { type, ...at, ...values } as LabFault
}

/** A toxic fault's links: every link of `group`, or the links `between` two groups. */
function linksIn (c: FileChecker, path: string, f: Json, dialect: FaultDialect): FaultLinks | undefined {
  if ((f.group === undefined) === (f.between === undefined)) {
    c.fail(path, 'needs exactly one of "group" (every link of a group) and "between" (the links between two groups)')
    return undefined
  }
  if (f.group !== undefined) {
    const group = dialect.group(c, `${path}.group`, f.group)
    return group === undefined ? undefined : { group }
  }
  const between = dialect.between(c, `${path}.between`, f.between)
  return between === undefined ? undefined : { between }
}

/** How `hsmlab fault` spells the faults (its subcommands) and their fields (its flags; it has no `--toxicity`). */
export const CLI_FAULT_SPELLING: FaultSpelling = {
  words: { partition: ['partition'], blackhole: ['blackhole'], latency: ['latency'], reset_peer: ['reset-peer'] },
  fieldNames: { timeoutMs: 'timeout-ms', toxicity: null }
}

/**
 * Checks the numbers of a fault given in normal form (by `applyFault`, from a script, the command
 * line, a topology or a scenario) against the widest limits, and returns the toxics it becomes:
 * one on each direction of a link. Throws LAB_ERR_USAGE naming the command-line flag.
 */
export function toxicsOf (fault: ToxicFault): FaultToxic[] {
  const checked = { ...fault } as Record<string, unknown>
  for (const field of FAULTS[fault.type].fields) {
    const value = checked[field.name] ?? field.default
    if (field.unit === 'ms') {
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > FAULT_MS_MAX) {
        const flag = fieldName(CLI_FAULT_SPELLING, field.name) ?? field.name
        throw new LabError(LAB_ERR_USAGE, `${faultWord(CLI_FAULT_SPELLING, fault.type)} --${flag} must be a whole number of milliseconds from 0 to ${FAULT_MS_MAX}, not ${JSON.stringify(value)}`)
      }
    } else if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
      throw new LabError(LAB_ERR_USAGE, `${field.name} must be a number from 0 to 1, not ${JSON.stringify(value)}`)
    }
    checked[field.name] = value
  }
  const toxicity = checked.toxicity as number
  const streams = ['upstream', 'downstream'] as const
  if (fault.type === 'latency') {
    const attributes = FAULTS.latency.attributes(checked as typeof fault)
    return streams.map(stream => ({ name: toxicName('latency', stream), type: 'latency', stream, attributes, toxicity }))
  }
  const attributes = FAULTS.reset_peer.attributes(checked as typeof fault)
  return streams.map(stream => ({ name: toxicName('reset_peer', stream), type: 'reset_peer', stream, attributes, toxicity }))
}
