/**
 * CMU's quorum (M of N) commands, as the AWS CloudHSM User Guide shows them
 * (quorum-authentication-crypto-officers*.md, cloudhsm_mgmt_util-registerQuorumPubKey.md):
 * registerQuorumPubKey, getToken, approveToken, listTokens, getMValue, setMValue.
 *
 * Token and approval files are what the guide makes with openssl: getToken writes one token file
 * holding every HSM's token (one line each); approvers sign the whole file with
 * `openssl dgst -sha256 -sign <key> -out <sig> <token file>`; the approval file names the token
 * file and each approver's type, name and signature file.
 */
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import type { QuorumApproval } from '@hsmlab/protocol'
import { writePrivateFile } from '../private-file.js'
import type { CmuCommand, CmuContext } from './command.js'
import { UsageError, expectArgCount, parseInteger, parseUserType } from './command.js'
import { failureLines, getMValueLine, listTokensSection, settingMValueLine, successLine, tokenLines } from './format.js'

/** The file at `path`, or a UsageError naming it (nothing is sent). */
export async function readArgumentFile (path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (err) {
    throw new UsageError(`cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

function parseService (text: string): number {
  const service = parseInteger(text, 'the service')
  if (service !== 3 && service !== 4) throw new UsageError(`services are 3 (USER_MGMT) and 4 (MISC_CO), not ${service}`)
  return service
}

/** Prints each outcome's success line or failure lines. */
function printOutcomes (ctx: CmuContext, command: string, outcomes: ReadonlyArray<{ label: string, outcome: { ok: true } | { ok: false, failure: { reason: string } } }>): void {
  for (const { label, outcome } of outcomes) {
    if (outcome.ok) ctx.println(successLine(command, label))
    else ctx.printLines(failureLines(command, label, outcome.failure.reason))
  }
}

const registerQuorumPubKey: CmuCommand = {
  name: 'registerQuorumPubKey',
  syntax: 'registerQuorumPubKey <user-type> <user-name> <registration-token> <signed-registration-token> <public-key>',
  summary: 'Register your RSA-2048 public key for quorum approvals (CO)',
  async run (ctx, args) {
    expectArgCount('registerQuorumPubKey', args, 5)
    const userType = parseUserType(args[0] ?? '')
    const userName = args[1] ?? ''
    const token = await readArgumentFile(args[2] ?? '', 'registration token')
    if (token.length === 0 || token.length > 245) throw new UsageError(`the registration token must hold 1 to 245 bytes, not ${token.length}`)
    const signature = await readArgumentFile(args[3] ?? '', 'signed registration token')
    const publicKeyPem = (await readArgumentFile(args[4] ?? '', 'public key')).toString('utf8')
    if (!await ctx.confirm(true)) return
    printOutcomes(ctx, 'registerQuorumPubKey', await ctx.fanOut('registerQuorumPubKey', { userType, userName, token, signature, publicKeyPem }))
  }
}

const getToken: CmuCommand = {
  name: 'getToken',
  syntax: 'getToken <service> <user-name> <token-file>',
  summary: 'Get a quorum token of each HSM for a service (3 user management, 4 setMValue) into a file',
  async run (ctx, args) {
    expectArgCount('getToken', args, 3)
    const service = parseService(args[0] ?? '')
    const userName = args[1] ?? ''
    const outcomes = await ctx.fanOut('getQuorumToken', { service, userName })
    const lines: string[] = []
    for (const { label, outcome } of outcomes) {
      if (!outcome.ok) {
        ctx.printLines(failureLines('getToken', label, outcome.failure.reason))
        continue
      }
      ctx.printLines([successLine('getToken', label), ...tokenLines(outcome.result.token)])
      lines.push(outcome.result.line)
    }
    if (lines.length > 0) await writePrivateFile(args[2] ?? '', lines.map(l => `${l}\n`).join(''))
  }
}

/** The approval file read: its token file's bytes and the approvals with their signatures. */
interface ApprovalFile { tokenFile: Buffer, approvals: QuorumApproval[] }

/**
 * Reads a token approval file in the guide's format: `Key = value;` lines, `#` comments. Paths
 * in it are taken relative to the approval file's folder when they are not absolute.
 */
async function readApprovalFile (path: string): Promise<ApprovalFile> {
  const text = (await readArgumentFile(path, 'approval file')).toString('utf8')
  const base = dirname(resolve(path))
  const entries: Array<[string, string]> = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim()
    if (line === '') continue
    const m = /^([^=]+?)\s*=\s*([^;]*?)\s*;?\s*$/.exec(line)
    if (m === null) throw new UsageError(`the approval file has a line that is not 'Key = value;': ${line}`)
    entries.push([(m[1] ?? '').toLowerCase(), m[2] ?? ''])
  }
  const value = (key: string): string | undefined => entries.find(([k]) => k === key)?.[1]
  const tokenPath = value('multi token file path') || value('token file path') // ||, not ??: an empty path means "not given"
  if (tokenPath === undefined || tokenPath === '') throw new UsageError('the approval file names no token file (Multi Token File Path)')
  const count = Number(value('number of approvals'))
  const types = entries.filter(([k]) => k === 'approver type').map(([, v]) => v)
  const names = entries.filter(([k]) => k === 'approver name').map(([, v]) => v)
  const files = entries.filter(([k]) => k === 'approval file').map(([, v]) => v)
  if (!Number.isInteger(count) || count < 1 || types.length !== count || names.length !== count || files.length !== count) {
    throw new UsageError(`the approval file must give Number of Approvals and that many Approver Type, Approver Name and Approval File lines`)
  }
  const approvals: QuorumApproval[] = []
  for (let i = 0; i < count; i++) {
    approvals.push({
      approverType: parseInteger(types[i] ?? '', 'the approver type'),
      approverName: names[i] ?? '',
      signature: await readArgumentFile(resolve(base, files[i] ?? ''), 'approval signature')
    })
  }
  return { tokenFile: await readArgumentFile(resolve(base, tokenPath), 'token file'), approvals }
}

const approveToken: CmuCommand = {
  name: 'approveToken',
  syntax: 'approveToken <approval-file>',
  summary: 'Give the HSMs a quorum token with its approvers\' signatures',
  async run (ctx, args) {
    expectArgCount('approveToken', args, 1)
    const { tokenFile, approvals } = await readApprovalFile(args[0] ?? '')
    printOutcomes(ctx, 'approveToken', await ctx.fanOut('approveQuorumToken', { tokenFile, approvals }))
  }
}

const listTokens: CmuCommand = {
  name: 'listTokens',
  syntax: 'listTokens',
  summary: 'List the quorum tokens of this session on each HSM',
  async run (ctx, args) {
    expectArgCount('listTokens', args, 0)
    const outcomes = await ctx.fanOut('listQuorumTokens', {})
    let failed = false
    for (const { server, label, outcome } of outcomes) {
      if (outcome.ok) ctx.printLines(listTokensSection(server.id, server.config.name, outcome.result.tokens))
      else {
        failed = true
        ctx.printLines(['', ...failureLines('listTokens', label, outcome.failure.reason)])
      }
    }
    ctx.printLines(['', failed ? 'listTokens failed' : 'listTokens success'])
  }
}

const getMValue: CmuCommand = {
  name: 'getMValue',
  syntax: 'getMValue <service>',
  summary: 'Show the quorum minimum value (M) of a service on each HSM',
  async run (ctx, args) {
    expectArgCount('getMValue', args, 1)
    const service = parseService(args[0] ?? '')
    for (const { server, label, outcome } of await ctx.fanOut('getMValue', { service })) {
      if (outcome.ok) ctx.println(getMValueLine(service, server.id, outcome.result.mValue))
      else ctx.printLines(failureLines('getMValue', label, outcome.failure.reason))
    }
  }
}

const setMValue: CmuCommand = {
  name: 'setMValue',
  syntax: 'setMValue <service> <M value>',
  summary: 'Set the quorum minimum value (M, 1 to 8) of a service',
  async run (ctx, args) {
    expectArgCount('setMValue', args, 2)
    const service = parseService(args[0] ?? '')
    const mValue = parseInteger(args[1] ?? '', 'the M value', { max: 8 })
    if (mValue < 1) throw new UsageError('the M value is 1 to 8')
    if (!await ctx.confirm(false)) return
    const targets = ctx.targets()
    ctx.println(settingMValueLine(mValue, service, targets.length))
    // As createUser: the guide shows nothing more on success; a failure says which server.
    for (const { label, outcome } of await ctx.fanOut('setMValue', { service, mValue }, targets)) {
      if (!outcome.ok) ctx.printLines(failureLines('setMValue', label, outcome.failure.reason))
    }
  }
}

/** The quorum commands, in help order. */
export const QUORUM_COMMANDS: readonly CmuCommand[] = [registerQuorumPubKey, getToken, approveToken, listTokens, getMValue, setMValue]
