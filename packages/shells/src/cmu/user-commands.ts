/**
 * CMU's user commands (reference A.6, A.10): loginHSM, logoutHSM, listUsers, createUser,
 * deleteUser, changePswd, syncUser. createUser, deleteUser and changePswd go through the servers
 * one at a time, because a failure on one server asks the person what to do before the next.
 *
 * `-2fa <path>` (manage-2fa.md): CMU asks each HSM for a challenge, writes the authdata file
 * (JSON: Version, PublicKey, Data[{HsmId, Digest, Signature}]), waits for the person to sign
 * each digest and fill in the signatures (and the public key for createUser and changePswd),
 * then sends each HSM its signature.
 */
import { readFile } from 'node:fs/promises'
import type { ServerEntry } from '@hsmlab/client'
import type { TwoFactorResponse, UserType } from '@hsmlab/protocol'
import { writePrivateFile } from '../private-file.js'
import type { CmuCommand, CmuContext, Credentials } from './command.js'
import { UsageError, expectArgCount, parseCredentials, parseInteger, parseServerId, parseUserType } from './command.js'
import { reasonWithDetail } from './failures.js'
import type { Failure } from './failures.js'
import {
  RETRY_IGNORE_ABORT_PROMPT, RETRY_ROLLBACK_IGNORE_PROMPT, failureLines, listUsersSection, successLine, syncStepLine
} from './format.js'

const PASSWORD_PROMPT = 'Enter password:'

/** The password of credentials, asked for after `-hpswd`; undefined when input ended (nothing is sent). */
async function passwordOf (ctx: CmuContext, credentials: Credentials): Promise<string | undefined> {
  if (credentials.password !== undefined) return credentials.password
  return await ctx.askSecret(PASSWORD_PROMPT)
}

/** hsmlab's words when the authdata file is ready to sign (the guide does not show CMU's). */
export function twoFactorPromptLines (path: string, withPublicKey: boolean): string[] {
  return [`Sign each Digest in ${path} with your 2FA private key (SHA-256, RSA PKCS#1 v1.5) and put the`,
    `Base64 signatures in its Signature fields${withPublicKey ? ', and your PEM public key in PublicKey' : ''}.`]
}

/** What the authdata file says for each server, or undefined (after saying why) when it cannot be used. */
async function secondFactor (ctx: CmuContext, command: string, path: string, withPublicKey: boolean): Promise<Map<number, TwoFactorResponse> | undefined> {
  const outcomes = await ctx.fanOut('getChallenge', {})
  const data: Array<{ HsmId: string, Digest: string, Signature: string }> = []
  for (const { server, label, outcome } of outcomes) {
    if (!outcome.ok) {
      ctx.printLines(failureLines(command, label, outcome.failure.reason))
      return undefined
    }
    data.push({ HsmId: server.connection?.hsmId ?? '', Digest: Buffer.from(outcome.result.digest).toString('base64'), Signature: '' })
  }
  await writePrivateFile(path, `${JSON.stringify({ Version: '1.0', PublicKey: '', Data: data }, null, 4)}\n`)
  ctx.printLines(twoFactorPromptLines(path, withPublicKey))
  if (await ctx.ask('Press Enter to continue:') === undefined) return undefined
  let answer: { PublicKey?: unknown, Data?: unknown }
  try {
    answer = JSON.parse(await readFile(path, 'utf8')) as typeof answer
  } catch (err) {
    ctx.println(`${command} failed: cannot read the authdata file ${path}: ${(err as Error).message}`)
    return undefined
  }
  const rows = Array.isArray(answer.Data) ? answer.Data as Array<Record<string, unknown>> : []
  const responses = new Map<number, TwoFactorResponse>()
  for (const { server } of outcomes) {
    const row = rows.find(r => r.HsmId === server.connection?.hsmId)
    const response: TwoFactorResponse = { signature: Buffer.from(typeof row?.Signature === 'string' ? row.Signature : '', 'base64') }
    if (withPublicKey && typeof answer.PublicKey === 'string') response.publicKeyPem = answer.PublicKey
    responses.set(server.id, response)
  }
  return responses
}

/** Prints `<cmd> success on …` or the failure lines for each outcome. */
function printResults (ctx: CmuContext, command: string, outcomes: ReadonlyArray<{ label: string, outcome: { ok: boolean, failure?: { reason: string } } }>): void {
  for (const { label, outcome } of outcomes) {
    if (outcome.ok) ctx.println(successLine(command, label))
    else ctx.printLines(failureLines(command, label, outcome.failure?.reason ?? 'unknown error'))
  }
}

const loginHSM: CmuCommand = {
  name: 'loginHSM',
  syntax: 'loginHSM <user-type> <user-name> <password | -hpswd> [-2fa </path/to/authdata>]',
  summary: 'Log in to the HSMs (PRECO, CO, CU or AU)',
  async run (ctx, args) {
    const credentials = parseCredentials('loginHSM', args)
    const password = await passwordOf(ctx, credentials)
    if (password === undefined) return
    const factors = credentials.twoFactorPath === undefined ? undefined : await secondFactor(ctx, 'loginHSM', credentials.twoFactorPath, false)
    if (credentials.twoFactorPath !== undefined && factors === undefined) return
    ctx.println()
    const { userType, userName } = credentials
    const outcomes = await Promise.all(ctx.targets().map(async server => {
      const twoFactor = factors?.get(server.id)
      return { label: ctx.label(server), outcome: await ctx.call(server, 'login', { userType, userName, password, ...(twoFactor === undefined ? {} : { twoFactor }) }) }
    }))
    printResults(ctx, 'loginHSM', outcomes)
    // The guide's last revision shows a blank line before the next prompt.
    ctx.println()
  }
}

const logoutHSM: CmuCommand = {
  name: 'logoutHSM',
  syntax: 'logoutHSM',
  summary: 'Log out of the HSMs',
  async run (ctx, args) {
    expectArgCount('logoutHSM', args, 0)
    ctx.println()
    printResults(ctx, 'logoutHSM', await ctx.fanOut('logout', {}))
    ctx.println()
  }
}

const listUsers: CmuCommand = {
  name: 'listUsers',
  syntax: 'listUsers',
  summary: 'List the users of each HSM (no login needed)',
  async run (ctx, args) {
    expectArgCount('listUsers', args, 0)
    for (const { label, outcome } of await ctx.fanOut('listUsers', {})) {
      if (outcome.ok) ctx.printLines(listUsersSection(label, outcome.result.users))
      else ctx.printLines(failureLines('listUsers', label, outcome.failure.reason))
    }
  }
}

/**
 * createUser and changePswd: password, banner, then each server in turn; a success prints
 * nothing (the guide's examples end with `Creating User … on N nodes`), a failure asks
 * Retry/Ignore/Abort (R tries that server again, I goes on to the next, A stops).
 */
async function eachServerWithRetry (
  ctx: CmuContext,
  step: (server: ServerEntry) => Promise<{ ok: true } | { ok: false, reason: string }>,
  failure: (label: string, reason: string) => string[]
): Promise<void> {
  for (const server of ctx.targets()) {
    const label = ctx.label(server)
    for (;;) {
      const outcome = await step(server)
      if (outcome.ok) break
      ctx.printLines([...failure(label, outcome.reason), ''])
      const answer = await ctx.choose(RETRY_IGNORE_ABORT_PROMPT, ['R', 'I', 'A'], 'A')
      if (answer === 'A') return
      if (answer === 'I') break
    }
  }
}

const createUser: CmuCommand = {
  name: 'createUser',
  syntax: 'createUser <user-type> <user-name> <password | -hpswd> [-2fa </path/to/authdata>]',
  summary: 'Create a user (CO or CU) on the HSMs',
  async run (ctx, args) {
    const credentials = parseCredentials('createUser', args)
    const password = await passwordOf(ctx, credentials)
    if (password === undefined) return
    const factors = credentials.twoFactorPath === undefined ? undefined : await secondFactor(ctx, 'createUser', credentials.twoFactorPath, true)
    if (credentials.twoFactorPath !== undefined && factors === undefined) return
    if (!await ctx.confirm(true)) return
    const { userType, userName } = credentials
    ctx.println(`Creating User ${userName}(${userType}) on ${ctx.targets().length} nodes`)
    await eachServerWithRetry(ctx,
      async server => {
        const twoFactor = factors?.get(server.id)
        const o = await ctx.call(server, 'createUser', { userType, userName, password, ...(twoFactor === undefined ? {} : { twoFactor }) })
        return o.ok ? { ok: true } : { ok: false, reason: o.failure.reason }
      },
      (label, reason) => [`createUser failed: ${reason}`, `creating user on ${label} failed`])
  }
}

const changePswd: CmuCommand = {
  name: 'changePswd',
  syntax: 'changePswd <user-type> <user-name> <password | -hpswd> [-2fa </path/to/authdata>]',
  summary: "Change a user's password (a PRECO's change activates the cluster)",
  async run (ctx, args) {
    const credentials = parseCredentials('changePswd', args)
    const password = await passwordOf(ctx, credentials)
    if (password === undefined) return
    const factors = credentials.twoFactorPath === undefined ? undefined : await secondFactor(ctx, 'changePswd', credentials.twoFactorPath, true)
    if (credentials.twoFactorPath !== undefined && factors === undefined) return
    if (!await ctx.confirm(true)) return
    const { userType, userName } = credentials
    ctx.println(`Changing password for ${userName}(${userType}) on ${ctx.targets().length} nodes`)
    await eachServerWithRetry(ctx,
      async server => {
        const twoFactor = factors?.get(server.id)
        const o = await ctx.call(server, 'changePassword', { userType, userName, password, ...(twoFactor === undefined ? {} : { twoFactor }) })
        return o.ok ? { ok: true } : { ok: false, reason: o.failure.reason }
      },
      (label, reason) => failureLines('changePswd', label, reason))
  }
}

/**
 * deleteUser's rollBack: the user still exists on the server where the delete failed, so it is
 * copied back, as a masked object, to the servers it was already deleted from.
 */
async function rollBackDelete (ctx: CmuContext, source: ServerEntry, deleted: readonly ServerEntry[], userType: UserType, userName: string): Promise<void> {
  if (deleted.length === 0) return
  const sourceLabel = ctx.label(source)
  const fail = (label: string, reason: string): void => { ctx.printLines(failureLines('rollBack', label, reason)) }
  const listed = await ctx.call(source, 'listUsers', {})
  if (!listed.ok) { fail(sourceLabel, listed.failure.reason); return }
  const wanted = userName.toLowerCase()
  const user = listed.result.users.find(u => u.userName.toLowerCase() === wanted)
  if (user === undefined) { fail(sourceLabel, `user ${userName}(${userType}) is not on this server to copy back`); return }
  const extracted = await ctx.call(source, 'extractMaskedObject', { kind: 'user', userId: user.userId })
  if (!extracted.ok) { fail(sourceLabel, extracted.failure.reason); return }
  for (const server of deleted) {
    const inserted = await ctx.call(server, 'insertMaskedObject', { blob: extracted.result.blob })
    if (inserted.ok) ctx.println(successLine('rollBack', ctx.label(server)))
    else fail(ctx.label(server), inserted.failure.reason)
  }
}

const deleteUser: CmuCommand = {
  name: 'deleteUser',
  syntax: 'deleteUser <user-type> <user-name>',
  summary: 'Delete a user (CO or CU) from the HSMs',
  async run (ctx, args) {
    expectArgCount('deleteUser', args, 2)
    const userType = parseUserType(args[0] ?? '')
    const userName = args[1] ?? ''
    const targets = ctx.targets()
    ctx.println(`Deleting user ${userName}(${userType}) on ${targets.length} nodes`)
    const deleted: ServerEntry[] = []
    for (const server of targets) {
      const label = ctx.label(server)
      for (;;) {
        const outcome = await ctx.call(server, 'deleteUser', { userType, userName })
        if (outcome.ok) {
          ctx.println(successLine('deleteUser', label))
          deleted.push(server)
          break
        }
        ctx.printLines([...failureLines('deleteUser', label, outcome.failure.reason), ''])
        const answer = await ctx.choose(RETRY_ROLLBACK_IGNORE_PROMPT, ['R', 'B', 'I'], 'B')
        if (answer === 'I') break
        if (answer === 'B') {
          await rollBackDelete(ctx, server, deleted, userType, userName)
          return
        }
      }
    }
  }
}

/** The source server of syncKey/syncUser: server mode only (reference A.4). */
export function syncSource (ctx: CmuContext, command: string): ServerEntry {
  const id = ctx.serverMode
  if (id === undefined) {
    throw new UsageError(`${command} runs in server mode on the source HSM: type 'server <source server id>' first`)
  }
  return ctx.servers[id] as ServerEntry
}

/** The destination server of syncKey/syncUser. */
export function syncDestination (ctx: CmuContext, source: ServerEntry, text: string): ServerEntry {
  const id = parseServerId(ctx, text)
  if (id === source.id) throw new UsageError(`the destination must be another server than the source (server ${id})`)
  return ctx.servers[id] as ServerEntry
}

const syncUser: CmuCommand = {
  name: 'syncUser',
  syntax: 'syncUser <user ID> <server ID>',
  summary: 'Copy a user from this HSM to another (server mode on the source)',
  async run (ctx, args) {
    expectArgCount('syncUser', args, 2)
    const source = syncSource(ctx, 'syncUser')
    const userId = parseInteger(args[0] ?? '', 'the user id')
    const destination = syncDestination(ctx, source, args[1] ?? '')
    const failed = (server: ServerEntry, step: 'ExtractMaskedObject' | 'InsertMaskedObject', failure: Failure): undefined => {
      if (failure.returnCode !== undefined) ctx.println(syncStepLine(step, failure.returnCode))
      ctx.printLines(failureLines('syncUser', ctx.label(server), reasonWithDetail(failure)))
      return undefined
    }
    const extracted = await ctx.call(source, 'extractMaskedObject', { kind: 'user', userId })
    if (!extracted.ok) return failed(source, 'ExtractMaskedObject', extracted.failure)
    ctx.println(syncStepLine('ExtractMaskedObject', 0))
    const inserted = await ctx.call(destination, 'insertMaskedObject', { blob: extracted.result.blob })
    if (!inserted.ok) return failed(destination, 'InsertMaskedObject', inserted.failure)
    ctx.println(syncStepLine('InsertMaskedObject', 0))
    const newId = inserted.result.userId
    if (newId !== undefined && newId !== userId) ctx.println(`User ${userId} was inserted on ${ctx.label(destination)} with user id ${newId}`)
    ctx.println('syncUser success')
  }
}

/** The user commands, in help order. */
export const USER_COMMANDS: readonly CmuCommand[] = [loginHSM, logoutHSM, listUsers, createUser, deleteUser, changePswd, syncUser]
