/**
 * `hsmlab fault ...`: the command line of faults.ts (docs/lab.md "Faults").
 *
 *   hsmlab fault partition  GROUP [--dir DIR]
 *   hsmlab fault blackhole  GROUP [--dir DIR]
 *   hsmlab fault latency    FROM TO --ms N [--jitter N] [--dir DIR]
 *   hsmlab fault reset-peer GROUP [--timeout-ms N] [--dir DIR]
 *   hsmlab fault heal       [GROUP] [--dir DIR]
 *   hsmlab fault list       [--dir DIR] [--json]
 *
 * `faultMain(argv, io)` returns the exit code: 0 done, 1 failed (`[LAB_ERR_...]` and why), 2 the
 * command line cannot be understood, or names a group the lab does not have.
 */
import { parseArgs } from 'node:util'
import { labDefaults } from './defaults.js'
import { LAB_ERR_USAGE, LabError } from './errors.js'
import { applyFault, healFaults, listFaults } from './faults.js'
import type { AppliedFault, FaultListing } from './faults.js'
import { CLI_FAULT_SPELLING, FAULTS, FAULT_TYPES, faultTypeOf, faultWord, fieldsIn } from './fault-vocabulary.js'
import type { FaultFieldName, LabFault } from './fault-vocabulary.js'

/** Where `faultMain` writes, and the directory it resolves `--dir` against. */
export interface FaultCommandIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** @default process.cwd() */
  cwd?: string
}

const GROUPS = `GROUP is a region (us-west-2: the region cut off from everything outside it, its inside
keeps working), a cluster (us-east-1/primary), an HSM (us-east-1/primary/hsm-0, or its id: cut
from its clients and its cluster's peers), a link family (wan: every link between regions;
peer/us-east-1/primary: that cluster's replication; control: the control planes' links to their
HSMs) or one link's name; 'hsmlab fault list' shows every link and its groups.`

/** `hsmlab fault --help`. */
export const FAULT_HELP = `usage: hsmlab fault <partition|blackhole|latency|reset-peer|heal|list> ... [--dir DIR]

Sets and lifts network faults on the links of the lab in DIR, through its fault proxy (any
Toxiproxy client can do the same at the endpoint 'hsmlab status --json' reports as faults.endpoint).

  partition  GROUP                        cut every link of GROUP: connections reset, new ones refused
  blackhole  GROUP                        drop every byte on the links of GROUP, both ways; nothing is closed
  latency    FROM TO --ms N [--jitter N]  delay each byte N ms (± jitter) on the links between two groups,
                                          both directions (a round trip takes 2 × N more)
  reset-peer GROUP [--timeout-ms N]       reset each connection of GROUP (TCP RST) N ms after it next
                                          carries data (default 0)
  heal       [GROUP]                      lift everything, or GROUP's cuts and the toxics on its links
  list       [--json]                     every link, where it listens, and what is set on it

${GROUPS}

  -d, --dir DIR   lab directory (default: ${labDefaults.dir})
`

const EXIT_OK = 0
const EXIT_FAILURE = 1
const EXIT_USAGE = 2

function usage (message: string): LabError {
  return new LabError(LAB_ERR_USAGE, `${message}\n\n${FAULT_HELP}`)
}

function milliseconds (flag: string, text: string | undefined, required: boolean): number | undefined {
  if (text === undefined) {
    if (required) throw usage(`${flag} N is required (milliseconds)`)
    return undefined
  }
  const value = Number(text)
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value)) throw usage(`${flag} must be a whole number of milliseconds, not '${text}'`)
  return value
}

function plural (n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

/** What a fault that was set prints. */
function formatApplied (applied: AppliedFault): string {
  const { fault, links } = applied
  const where = 'group' in fault ? fault.group : `${fault.between[0]} and ${fault.between[1]}`
  const what = fault.type === 'partition'
    ? `partitioned ${where}`
    : fault.type === 'blackhole'
      ? `blackholed ${where}`
      : fault.type === 'latency'
        ? `latency ${fault.ms} ms${(fault.jitter ?? 0) > 0 ? ` ± ${fault.jitter ?? 0} ms` : ''} on the links ${'group' in fault ? `of ${where}` : `between ${where}`}, both directions`
        : `reset_peer${(fault.timeoutMs ?? 0) > 0 ? ` after ${fault.timeoutMs ?? 0} ms` : ''} on the links ${'group' in fault ? `of ${where}` : `between ${where}`}`
  return `${what}: ${plural(links.length, 'link')}\n${links.map(l => `  ${l}\n`).join('')}`
}

function table (rows: string[][]): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length) })
  return rows.map(row => row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd())
}

/** What `hsmlab fault list` prints. */
export function formatFaultList (listing: FaultListing): string {
  const lines = [`fault proxy ${listing.endpoint}  seed ${listing.seed}  ${listing.healed ? 'no fault set' : 'faults set'}`]
  if (listing.partitions.length > 0) lines.push(`partitioned: ${listing.partitions.join(', ')}`)
  if (listing.blackholes.length > 0) lines.push(`blackholed: ${listing.blackholes.join(', ')}`)
  lines.push('')
  lines.push(...table([
    ['LINK', 'LISTEN', 'UPSTREAM', 'STATE', 'TOXICS'],
    ...listing.links.map(l => [
      l.name,
      l.listen,
      l.upstream,
      !l.enabled ? 'disabled' : l.partitioned ? 'partitioned' : l.blackholed ? 'blackholed' : 'ok',
      l.toxics.length === 0
        ? '-'
        : l.toxics.map(t => `${t.name}(${Object.entries(t.attributes).map(([k, v]) => `${k}=${v}`).join(',')}${t.toxicity < 1 ? `,toxicity=${t.toxicity}` : ''})`).join(' ')
    ])
  ]))
  lines.push('')
  lines.push(`groups: ${listing.groups}`)
  return lines.join('\n') + '\n'
}

/** Runs `hsmlab fault ARGS`; resolves with the exit code. */
export async function faultMain (argv: string[], io: FaultCommandIo): Promise<number> {
  const cwd = io.cwd ?? process.cwd()
  const [sub, ...rest] = argv
  try {
    let parsed
    try {
      parsed = parseArgs({
        args: rest,
        strict: true,
        allowPositionals: true,
        options: {
          dir: { type: 'string', short: 'd' },
          ms: { type: 'string' },
          jitter: { type: 'string' },
          'timeout-ms': { type: 'string' },
          json: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' }
        }
      })
    } catch (err) {
      throw usage((err as Error).message)
    }
    const { values: v, positionals: args } = parsed
    if (v.help === true || sub === 'help' || sub === '--help' || sub === '-h') { io.stdout(FAULT_HELP); return EXIT_OK }
    const location = { cwd, ...(v.dir === undefined ? {} : { dir: v.dir }) }
    // A Map: the subcommand comes from the command line, and a plain object would answer
    // `constructor` or `toString` with what it inherits. A fault's flags are its fields as the
    // command line spells them (fault-vocabulary.ts).
    const allowed = new Map<string, readonly string[]>([
      ...FAULT_TYPES.map(type => [faultWord(CLI_FAULT_SPELLING, type), fieldsIn(CLI_FAULT_SPELLING, type).map(f => f.name)] as const),
      ['heal', []], ['list', ['json']]
    ])
    if (sub === undefined) throw usage('name a fault command')
    const flags = allowed.get(sub)
    if (flags === undefined) throw usage(`unknown fault command '${sub}'`)
    for (const flag of [...new Set([...allowed.values()].flat())]) {
      if (v[flag as keyof typeof v] !== undefined && !flags.includes(flag)) throw usage(`--${flag} does not apply to 'hsmlab fault ${sub}'`)
    }
    const count = (n: number, what: string): void => { if (args.length !== n) throw usage(`'hsmlab fault ${sub}' takes ${what}`) }
    const type = faultTypeOf(CLI_FAULT_SPELLING, sub)
    let fault: LabFault | undefined
    if (type !== undefined) {
      // The command line's own grammar: a cut and reset-peer take one GROUP, latency two groups.
      if (type === 'latency') count(2, 'two groups, FROM and TO (like us-east-1 us-west-2)')
      else count(1, 'one GROUP')
      const values: Partial<Record<FaultFieldName, number>> = {}
      for (const { field, name } of fieldsIn(CLI_FAULT_SPELLING, type)) {
        const value = milliseconds(`--${name}`, v[name as keyof typeof v] as string | undefined, field.required)
        if (value !== undefined) values[field.name] = value
      }
      const at = FAULTS[type].kind === 'cut' || type === 'reset_peer' ? { group: args[0] as string } : { between: [args[0] as string, args[1] as string] }
      fault = { type, ...at, ...values } as LabFault
    }
    switch (sub) {
      case 'heal': {
        if (args.length > 1) throw usage("'hsmlab fault heal' takes at most one GROUP")
        const healed = await healFaults({ ...location, source: 'cli', ...(args[0] === undefined ? {} : { group: args[0] }) })
        io.stdout(args[0] === undefined
          ? `healed everything: every partition, blackhole and toxic lifted, every link enabled (${plural(healed.links.length, 'link')})\n`
          : `healed ${args[0]}: its cuts and the toxics on its links lifted (${plural(healed.links.length, 'link')} had something set)\n`)
        return EXIT_OK
      }
      case 'list': {
        count(0, 'no arguments')
        const listing = await listFaults(location)
        io.stdout(v.json === true ? JSON.stringify(listing, null, 2) + '\n' : formatFaultList(listing))
        return EXIT_OK
      }
    }
    io.stdout(formatApplied(await applyFault({ ...location, source: 'cli', fault: fault as LabFault })))
    return EXIT_OK
  } catch (err) {
    if (err instanceof LabError && err.code === LAB_ERR_USAGE) {
      io.stderr(`hsmlab fault ${sub ?? ''}: ${err.message}`.trimEnd() + '\n')
      return EXIT_USAGE
    }
    const code = (err as { code?: unknown }).code
    io.stderr(`hsmlab fault ${sub ?? ''}: ${typeof code === 'string' ? `[${code}] ` : ''}${(err as Error).message}\n`)
    return EXIT_FAILURE
  }
}
