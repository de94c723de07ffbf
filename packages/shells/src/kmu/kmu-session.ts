/**
 * One key_mgmt_util session: the connections to the cluster's HSMs (standing in for the client
 * daemon) and the dispatch of one command line at a time. Key operations go to one HSM, the
 * first reachable one in configuration order (replicating token keys is the HSM's job);
 * loginHSM, logoutHSM and listUsers go to every HSM.
 */
import { LOCAL_FAILURE, errorLine, parseFlags } from './kmu-args.js'
import { COMMANDS } from './kmu-commands.js'
import { KmuContext } from './kmu-context.js'
import type { KmuCluster, KmuIo } from './kmu-context.js'
import { HELP_TEXT, UNSIMULATED_COMMANDS, USAGE } from './kmu-usage.js'

/** Options of a session. */
export interface KmuSessionOptions {
  /** Directory relative file names (-out, -f) are resolved against. @default process.cwd() */
  cwd?: string
}

/** What running one command line gave. */
export interface CommandOutcome {
  /** The command was `exit`. */
  exit: boolean
  /** The return code the command ended with: 0 for success (parse errors count as failures). */
  code: number
}

/**
 * One key_mgmt_util session over an open cluster client. `execute` runs one command line,
 * already split into tokens, and prints what the real tool prints.
 */
export class KmuSession {
  private readonly context: KmuContext

  constructor (cluster: KmuCluster, io: KmuIo, options: KmuSessionOptions = {}) {
    this.context = new KmuContext(cluster, io, options.cwd ?? process.cwd())
  }

  /** Runs one command; `tokens[0]` is the command name (case-sensitive, as in the real tool). */
  async execute (tokens: readonly string[]): Promise<CommandOutcome> {
    const [name, ...args] = tokens
    const io = this.context.io
    if (name === undefined) return { exit: false, code: 0 }
    if (name === 'exit') return { exit: true, code: 0 }
    if (name === 'help') {
      io.write(HELP_TEXT)
      return { exit: false, code: 0 }
    }
    const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
    if (command === undefined) {
      if (UNSIMULATED_COMMANDS.includes(name)) {
        io.write(errorLine(`${name} is not simulated by hsmlab's key_mgmt_util. Type help for the list of commands.`))
      } else {
        const like = [...Object.keys(COMMANDS), 'help', 'exit'].find(c => c.toLowerCase() === name.toLowerCase())
        io.write(errorLine(`Unknown command '${name}'.${like === undefined ? '' : ` Did you mean ${like}?`} Type help for the list of commands.`))
      }
      return { exit: false, code: LOCAL_FAILURE }
    }
    const parsed = parseFlags(args, command.flags, command.unsupported)
    if (!parsed.ok) {
      io.write(parsed.error)
      if (parsed.usage) io.write(`${USAGE[name] ?? ''}\n`)
      return { exit: false, code: LOCAL_FAILURE }
    }
    const code = await command.run(this.context, parsed.flags)
    return { exit: false, code }
  }
}
