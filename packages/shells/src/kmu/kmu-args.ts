/**
 * key_mgmt_util's flag parsing, after the real tool's: flags come in `-flag value` pairs (a few
 * stand alone: `-sess`, `-nex`, `-attest`), `-h` anywhere asks for the usage, an unknown or
 * repeated flag prints the usage, and a missing required flag prints
 * `Error: <what> (<flag>) is missing.` before it. Nothing is sent to an HSM unless parsing succeeds.
 */

/** What a command returns for a local failure (bad arguments, unreadable file): not an HSM return code. */
export const LOCAL_FAILURE = -1

/** How a flag's value is read. */
export type FlagKind =
  /** A non-negative decimal integer. */
  | 'int'
  /** Any string (one token: the real tool splits the command line on spaces). */
  | 'string'
  /** A comma-separated list of non-negative integers (`-u 4,5`). */
  | 'ids'
  /** A flag without a value. */
  | 'bool'

/** One flag of a command. */
export interface FlagSpec {
  flag: string
  kind: FlagKind
  /** How the error messages name it: `Key handle` → `Error: Key handle (-k) is missing.` */
  what: string
  required?: boolean
}

/** The parsed values, by flag name without its dash (`-min_srv` → `min_srv`). */
export interface ParsedFlags {
  ints: Map<string, number>
  strings: Map<string, string>
  ids: Map<string, number[]>
  bools: Set<string>
}

/** What parsing a command's arguments gave. */
export type ParseOutcome =
  | { ok: true, flags: ParsedFlags }
  /** `error` (already formatted, may be empty) is printed, then the usage when `usage` is true. */
  | { ok: false, error: string, usage: boolean }

/** `\n\tError: <text>\n`: the real tool's error line. */
export function errorLine (text: string): string {
  return `\n\tError: ${text}\n`
}

function key (flag: string): string {
  return flag.replace(/^-/, '')
}

/**
 * Parses `args` (the tokens after the command name) against `specs`. `unsupported` flags are
 * refused with a sentence saying hsmlab does not simulate them.
 */
export function parseFlags (args: readonly string[], specs: readonly FlagSpec[], unsupported: readonly string[] = []): ParseOutcome {
  const flags: ParsedFlags = { ints: new Map(), strings: new Map(), ids: new Map(), bools: new Set() }
  const seen = new Set<string>()
  let usage = false
  let error = ''
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    if (arg === '-h') return { ok: false, error: '', usage: true }
    if (unsupported.includes(arg)) {
      return { ok: false, error: errorLine(`${arg} is not supported by hsmlab's key_mgmt_util.`), usage: false }
    }
    const spec = specs.find(s => s.flag === arg)
    if (spec === undefined || seen.has(arg)) { usage = true; continue }
    seen.add(arg)
    if (spec.kind === 'bool') { flags.bools.add(key(arg)); continue }
    const value = args[i + 1]
    if (value === undefined) { usage = true; continue }
    i++
    if (spec.kind === 'string') {
      flags.strings.set(key(arg), value)
    } else if (spec.kind === 'int') {
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
        if (error === '') error = errorLine(`Invalid value '${value}' for ${spec.what} (${arg}).`)
        usage = true
      } else {
        flags.ints.set(key(arg), Number(value))
      }
    } else {
      const parts = value.split(',').filter(p => p !== '')
      if (parts.length === 0 || !parts.every(p => /^\d+$/.test(p))) {
        if (error === '') error = errorLine(`Invalid value '${value}' for ${spec.what} (${arg}).`)
        usage = true
      } else {
        flags.ids.set(key(arg), parts.map(Number))
      }
    }
  }
  if (error !== '' || usage) return { ok: false, error, usage: true }
  for (const spec of specs) {
    if (spec.required === true && !seen.has(spec.flag)) {
      return { ok: false, error: errorLine(`${spec.what} (${spec.flag}) is missing.`), usage: true }
    }
  }
  return { ok: true, flags }
}
