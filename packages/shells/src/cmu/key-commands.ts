/**
 * CMU's key commands (reference A.6, A.10, C.1): findAllKeys, getAttribute, setAttribute,
 * listAttributes, getKeyInfo, shareKey, syncKey.
 *
 * findAllKeys, getAttribute and getKeyInfo take an optional output file: the sections that would
 * be printed go to the file (overwritten without warning, as the AWS pages say), and the screen
 * shows one `<cmd> success on server N(name)` line per server (or its failure lines).
 */
import { Attribute, CMU_SETTABLE_ATTRIBUTES, attributeName } from '@hsmlab/protocol'
import type { OperationName } from '@hsmlab/protocol'
import { writePrivateFile } from '../private-file.js'
import type { CmuCommand, CmuContext, ServerOutcome } from './command.js'
import { UsageError, expectArgCount, parseInteger } from './command.js'
import { reasonWithDetail } from './failures.js'
import {
  attributeSection, failureLines, findAllKeysSection, keyInfoSection, listAttributesLines, successLine
} from './format.js'
import { syncDestination, syncSource } from './user-commands.js'

/** Prints the sections, or writes them to `file` and prints one result line per server. */
async function emitSections<O extends OperationName> (
  ctx: CmuContext,
  command: string,
  outcomes: ReadonlyArray<ServerOutcome<O>>,
  sections: string[][],
  file: string | undefined
): Promise<void> {
  if (file === undefined) {
    for (const lines of sections) ctx.printLines(lines)
    return
  }
  // Key attributes and owners are nobody else's business: the file is the owner's only (0600).
  await writePrivateFile(file, sections.flat().map(line => `${line}\n`).join(''))
  for (const { label, outcome } of outcomes) {
    if (outcome.ok) ctx.println(successLine(command, label))
    else ctx.printLines(failureLines(command, label, outcome.failure.reason))
  }
}

const HANDLE_MAX = 0xffffffff

const findAllKeys: CmuCommand = {
  name: 'findAllKeys',
  syntax: 'findAllKeys <user id> <key hash (0/1)> [<output file>]',
  summary: 'List the keys a user owns (o) or shares (s) on each HSM, with an optional hash',
  async run (ctx, args) {
    expectArgCount('findAllKeys', args, 2, 3)
    const userId = parseInteger(args[0] ?? '', 'the user id', { max: HANDLE_MAX })
    if (args[1] !== '0' && args[1] !== '1') throw new UsageError(`the key hash argument must be 0 or 1, not '${args[1] ?? ''}'`)
    const outcomes = await ctx.fanOut('findAllKeys', { userId, withHash: args[1] === '1' })
    const sections = outcomes.map(({ label, outcome }, i) => {
      const lines = outcome.ok
        ? findAllKeysSection(label, outcome.result.keys, outcome.result.hash)
        : failureLines('findAllKeys', label, outcome.failure.reason)
      return i < outcomes.length - 1 ? [...lines, ''] : lines
    })
    await emitSections(ctx, 'findAllKeys', outcomes, sections, args[2])
  }
}

/** An attribute id getAttribute knows (listAttributes' list, 512 for all). */
function parseAttributeId (text: string): number {
  const id = parseInteger(text, 'the attribute id', { max: HANDLE_MAX })
  if (attributeName(id) === undefined) throw new UsageError(`unknown attribute id ${id}: listAttributes lists them`)
  return id
}

const getAttribute: CmuCommand = {
  name: 'getAttribute',
  syntax: 'getAttribute <key handle> <attribute id> [<filename>]',
  summary: "Get one attribute of a key (512: all) from each HSM",
  async run (ctx, args) {
    expectArgCount('getAttribute', args, 2, 3)
    const handle = parseInteger(args[0] ?? '', 'the key handle', { max: HANDLE_MAX })
    const attribute = parseAttributeId(args[1] ?? '')
    const outcomes = await ctx.fanOut('getAttribute', { handle, attribute })
    const sections = outcomes.map(({ label, outcome }) => outcome.ok
      ? attributeSection(label, outcome.result.attributes)
      : ['', ...failureLines('getAttribute', label, outcome.failure.reason)])
    await emitSections(ctx, 'getAttribute', outcomes, sections, args[2])
  }
}

/** Attributes whose value is text; every other settable attribute takes a number. */
const TEXT_ATTRIBUTES: readonly number[] = [Attribute.LABEL, Attribute.WRAP_TEMPLATE, Attribute.UNWRAP_TEMPLATE]

const setAttribute: CmuCommand = {
  name: 'setAttribute',
  syntax: 'setAttribute <key handle> <attribute id> <value>',
  summary: 'Change a settable attribute of a key you own',
  async run (ctx, args) {
    expectArgCount('setAttribute', args, 3)
    const handle = parseInteger(args[0] ?? '', 'the key handle', { max: HANDLE_MAX })
    const attribute = parseAttributeId(args[1] ?? '')
    if (!CMU_SETTABLE_ATTRIBUTES.includes(attribute)) {
      throw new UsageError(`${attributeName(attribute) ?? attribute} cannot be changed; settable attributes are ${CMU_SETTABLE_ATTRIBUTES.join(', ')}`)
    }
    const text = args[2] ?? ''
    const value = TEXT_ATTRIBUTES.includes(attribute) ? text : parseInteger(text, 'the value', { hex: true, max: HANDLE_MAX })
    if (!await ctx.confirm(false)) return
    for (const { label, outcome } of await ctx.fanOut('setAttribute', { handle, attribute, value })) {
      if (outcome.ok) ctx.println(successLine('setAttribute', label))
      else ctx.printLines(failureLines('setAttribute', label, outcome.failure.reason))
    }
  }
}

const listAttributes: CmuCommand = {
  name: 'listAttributes',
  syntax: 'listAttributes',
  summary: 'List the attribute ids getAttribute and setAttribute take (no login needed)',
  needsServers: false,
  async run (ctx, args) {
    expectArgCount('listAttributes', args, 0)
    ctx.printLines(listAttributesLines())
  }
}

const getKeyInfo: CmuCommand = {
  name: 'getKeyInfo',
  syntax: 'getKeyInfo -k <key-handle> [<output file>]',
  summary: 'Show the owner, shared users and quorum of a key',
  async run (ctx, args) {
    const rest = args[0] === '-k' ? args.slice(1) : args
    expectArgCount('getKeyInfo', rest, 1, 2)
    const handle = parseInteger(rest[0] ?? '', 'the key handle', { max: HANDLE_MAX })
    const outcomes = await ctx.fanOut('getKeyInfo', { handle })
    const sections = outcomes.map(({ label, outcome }) => outcome.ok
      ? keyInfoSection(label, outcome.result)
      : failureLines('getKeyInfo', label, outcome.failure.reason))
    await emitSections(ctx, 'getKeyInfo', outcomes, sections, rest[1])
  }
}

const shareKey: CmuCommand = {
  name: 'shareKey',
  syntax: 'shareKey <key handle> <user id> <(share/unshare key?) 1/0>',
  summary: 'Share (1) or unshare (0) a key you own with a crypto user',
  async run (ctx, args) {
    expectArgCount('shareKey', args, 3)
    const handle = parseInteger(args[0] ?? '', 'the key handle', { max: HANDLE_MAX })
    const userId = parseInteger(args[1] ?? '', 'the user id', { max: HANDLE_MAX })
    if (args[2] !== '0' && args[2] !== '1') throw new UsageError(`the last argument must be 1 (share) or 0 (unshare), not '${args[2] ?? ''}'`)
    if (!await ctx.confirm(false)) return
    for (const { label, outcome } of await ctx.fanOut('shareKey', { handle, userId, share: args[2] === '1' })) {
      if (outcome.ok) ctx.println(successLine('shareKey', label))
      else ctx.printLines(failureLines('shareKey', label, outcome.failure.reason))
    }
  }
}

const syncKey: CmuCommand = {
  name: 'syncKey',
  syntax: 'syncKey <key handle> <destination hsm>',
  summary: 'Copy a key from this HSM to another, keeping its handle (server mode on the source)',
  async run (ctx, args) {
    expectArgCount('syncKey', args, 2)
    const source = syncSource(ctx, 'syncKey')
    const handle = parseInteger(args[0] ?? '', 'the key handle', { max: HANDLE_MAX })
    const destination = syncDestination(ctx, source, args[1] ?? '')
    const extracted = await ctx.call(source, 'extractMaskedObject', { kind: 'key', handle })
    if (!extracted.ok) {
      ctx.printLines(failureLines('syncKey', ctx.label(source), reasonWithDetail(extracted.failure)))
      return
    }
    const inserted = await ctx.call(destination, 'insertMaskedObject', { blob: extracted.result.blob, sameHandle: true })
    if (!inserted.ok) {
      ctx.printLines(failureLines('syncKey', ctx.label(destination), reasonWithDetail(inserted.failure)))
      return
    }
    const newHandle = inserted.result.handle
    if (newHandle !== undefined && newHandle !== handle) ctx.println(`Key ${handle} was inserted on ${ctx.label(destination)} with handle ${newHandle}`)
    ctx.println('syncKey success')
  }
}

/** The key commands, in help order. */
export const KEY_COMMANDS: readonly CmuCommand[] = [findAllKeys, getAttribute, setAttribute, listAttributes, getKeyInfo, shareKey, syncKey]
