/**
 * CMU's session and HSM commands (reference A.4, A.6, A.8, A.9, A.10): server, exit, info,
 * getHSMInfo, getCert, enable_e2e, help, quit. The quorum commands are in quorum-commands.ts.
 */
import type { CmuCommand, CmuContext } from './command.js'
import { UsageError, expectArgCount, parseInteger, parseServerId } from './command.js'
import { writePrivateFile } from '../private-file.js'
import {
  DISCONNECTING_LINE, INFO_SERVER_HEADER, SERVER_MODE_LINE, failureLines, gettingHsmInfoLine, hsmInfoBlock,
  infoServerRow, loginStateText
} from './format.js'

const server: CmuCommand = {
  name: 'server',
  syntax: 'server <server-number>',
  summary: 'Enter server mode: commands act on that HSM only (exit leaves it)',
  needsServers: false,
  async run (ctx, args) {
    expectArgCount('server', args, 1)
    if (ctx.serverMode !== undefined) throw new UsageError(`already in server mode on server ${ctx.serverMode}: type exit first`)
    const id = parseServerId(ctx, args[0] ?? '')
    const entry = ctx.servers[id]
    if (entry?.connection === undefined) throw new UsageError(`server ${id} is not connected (see the start-up trace)`)
    ctx.println()
    ctx.println(SERVER_MODE_LINE)
    ctx.enterServerMode(id)
  }
}

const exit: CmuCommand = {
  name: 'exit',
  syntax: 'exit',
  summary: 'Leave server mode',
  needsServers: false,
  async run (ctx, args) {
    expectArgCount('exit', args, 0)
    if (ctx.serverMode === undefined) throw new UsageError('not in server mode (type quit to leave cloudhsm_mgmt_util)')
    ctx.exitServerMode()
  }
}

const info: CmuCommand = {
  name: 'info',
  syntax: 'info server <server ID>',
  summary: 'Show one server: name, host, port, state, HSM id and who is logged in',
  needsServers: false,
  async run (ctx, args) {
    expectArgCount('info', args, 2)
    if (args[0]?.toLowerCase() !== 'server') throw new UsageError(`the first argument must be 'server', not '${args[0] ?? ''}'`)
    const entry = ctx.servers[parseServerId(ctx, args[1] ?? '')]
    if (entry === undefined) return
    const connection = entry.connection
    let state = connection === undefined || connection.closed ? 'Disconnected' : 'Connected'
    let loggedIn: { userName: string, userType: string } | undefined
    if (state === 'Connected') {
      const answer = await ctx.call(entry, 'getHsmInfo', {})
      if (answer.ok) loggedIn = answer.result.loggedInAs
      else if (connection?.closed === true) state = 'Disconnected'
    }
    ctx.printLines([INFO_SERVER_HEADER, infoServerRow({
      id: entry.id,
      name: entry.config.name,
      hostname: entry.config.hostname,
      port: entry.config.port,
      state,
      partition: connection?.hsmId ?? '-',
      loginState: loginStateText(loggedIn)
    })])
  }
}

const getHSMInfo: CmuCommand = {
  name: 'getHSMInfo',
  syntax: 'getHSMInfo',
  summary: 'Show model, serial number, FIPS state, memory and firmware of each HSM',
  async run (ctx, args) {
    expectArgCount('getHSMInfo', args, 0)
    const outcomes = await ctx.fanOut('getHsmInfo', {})
    ctx.println(gettingHsmInfoLine(outcomes.length))
    for (const { server: entry, label, outcome } of outcomes) {
      if (outcome.ok) ctx.printLines(hsmInfoBlock(entry.id, outcome.result))
      else ctx.printLines(failureLines('getHSMInfo', label, outcome.failure.reason))
    }
  }
}

const CERTIFICATE_TYPES = [1, 2, 4, 8, 16]

const getCert: CmuCommand = {
  name: 'getCert',
  syntax: 'getCert <file-name> <certificate-type>',
  summary: "Write one of the HSM's certificates to a file (server mode; types 1, 2, 4, 8, 16)",
  async run (ctx, args) {
    expectArgCount('getCert', args, 2)
    if (ctx.serverMode === undefined) throw new UsageError("getCert runs in server mode: type 'server <server id>' first")
    const certType = parseInteger(args[1] ?? '', 'the certificate type')
    if (!CERTIFICATE_TYPES.includes(certType)) throw new UsageError(`certificate types are ${CERTIFICATE_TYPES.join(', ')}, not ${certType}`)
    const entry = ctx.servers[ctx.serverMode]
    if (entry === undefined) return
    const answer = await ctx.call(entry, 'getCertificate', { certType })
    if (!answer.ok) {
      ctx.printLines(failureLines('getCert', ctx.label(entry), answer.failure.reason))
      return
    }
    await writePrivateFile(args[0] ?? '', answer.result.pem)
    ctx.println('getCert Success')
  }
}

const enableE2e: CmuCommand = {
  name: 'enable_e2e',
  syntax: 'enable_e2e',
  summary: 'Enable end-to-end encryption (hsmlab connections are always encrypted)',
  async run (ctx, args) {
    expectArgCount('enable_e2e', args, 0)
    for (const entry of ctx.targets()) ctx.println(`E2E enabled on ${ctx.label(entry)}`)
  }
}

/** `help` and `help <command>`: hsmlab's own text (the real tool's is not documented). */
function printHelp (ctx: CmuContext, name: string | undefined): void {
  const command = name === undefined ? undefined : ctx.commands.find(c => c.name.toLowerCase() === name.toLowerCase())
  if (name !== undefined && command === undefined) throw new UsageError(`there is no command '${name}'`)
  if (command !== undefined) {
    ctx.printLines([`Syntax: ${command.syntax}`, `        ${command.summary}`])
    return
  }
  const width = Math.max(...ctx.commands.map(c => c.name.length)) + 4
  ctx.printLines([
    '',
    'cloudhsm_mgmt_util commands (help text by hsmlab):',
    '',
    ...ctx.commands.map(c => `    ${c.name.padEnd(width)}${c.summary}`),
    '',
    "Type 'help <command>' or '<command> -h' for its syntax. A command may be shortened to any",
    'prefix that names no other command (listU for listUsers). In server mode (server <id>) commands',
    'act on one HSM; otherwise on every HSM of the configuration.',
    ''
  ])
}

const help: CmuCommand = {
  name: 'help',
  syntax: 'help [<command-name>]',
  summary: 'List the commands, or show the syntax of one',
  needsServers: false,
  async run (ctx, args) {
    expectArgCount('help', args, 0, 1)
    printHelp(ctx, args[0])
  }
}

const quit: CmuCommand = {
  name: 'quit',
  syntax: 'quit',
  summary: 'Disconnect from the HSMs and leave',
  needsServers: false,
  async run (ctx) {
    ctx.printLines(['', DISCONNECTING_LINE])
    return 'quit'
  }
}

/** The session and HSM commands, in help order. */
export const SESSION_COMMANDS: readonly CmuCommand[] = [
  server, exit, info, getHSMInfo, getCert, enableE2e, help, quit
]
