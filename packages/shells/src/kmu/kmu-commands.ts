/**
 * The key_mgmt_util commands hsmlab simulates: their flags and what each prints. Every handler
 * gets parsed flags (parsing failed → nothing was sent) and returns the return code it ended with.
 * Output layouts are in kmu-format.ts; docs/kmu.md lists the decisions taken where the AWS pages
 * disagree.
 */
import { Attribute, KeyClass, KeyType, ReturnCode, describeReturnCode, formatReturnCode } from '@hsmlab/protocol'
import type { KeyCreationOptions } from '@hsmlab/protocol'
import { LOCAL_FAILURE, errorLine } from './kmu-args.js'
import type { FlagSpec, ParsedFlags } from './kmu-args.js'
import {
  attributeDump, clusterStatus, errorToString, findKeyList, keyInfoText, listAttributesText, listUsersText,
  mergeUsers, resultLine
} from './kmu-format.js'
import type { NodeStatus } from './kmu-format.js'
import type { KmuContext } from './kmu-context.js'
import { hostKeyUnwrap, hostKeyWrap, isAesKey, privateKeyDer, publicKeyDer } from './kmu-host-keys.js'
import { USAGE } from './kmu-usage.js'

/** The detail a failed outcome carries (only a read-only refusal's: kmu-context.ts). */
function detailOf (outcome: { ok: boolean, detail?: string }): string | undefined {
  return outcome.ok ? undefined : outcome.detail
}

/** One command: its flags and its handler. */
export interface KmuCommand {
  flags: readonly FlagSpec[]
  /** Flags of the real command that hsmlab refuses with a clear error rather than ignoring. */
  unsupported?: readonly string[]
  run: (ctx: KmuContext, flags: ParsedFlags) => Promise<number>
}

/** -min_srv can name at most the largest cluster (28 HSMs). */
const MIN_SRV_MAX = 28
/** -m_value is 0..8. */
const M_VALUE_MAX = 8
/** Extra time the client waits beyond -timeout for the HSM's answer, in milliseconds. */
const TIMEOUT_MARGIN_MS = 10_000
/** The protocol's largest sync timeout, in milliseconds. */
const SYNC_TIMEOUT_MAX_MS = 600_000

/** The flags every key-creating command shares (genSymKey, genRSAKeyPair, genECCKeyPair). */
const CREATION_FLAGS: readonly FlagSpec[] = [
  { flag: '-l', kind: 'string', what: 'Key label', required: true },
  { flag: '-id', kind: 'string', what: 'Key ID' },
  { flag: '-sess', kind: 'bool', what: 'Session key' },
  { flag: '-nex', kind: 'bool', what: 'Non-extractable' },
  { flag: '-u', kind: 'ids', what: 'Users to share with' },
  { flag: '-m_value', kind: 'int', what: 'M value' },
  { flag: '-min_srv', kind: 'int', what: 'Minimum servers' },
  { flag: '-timeout', kind: 'int', what: 'Timeout' },
  { flag: '-attest', kind: 'bool', what: 'Attestation' }
]

/** Prints an error line and the command's usage; returns LOCAL_FAILURE. */
function usageError (ctx: KmuContext, command: string, text: string): number {
  ctx.write(errorLine(text))
  ctx.write(`${USAGE[command] ?? ''}\n`)
  return LOCAL_FAILURE
}

/** -min_srv / -timeout as the protocol takes them, or an error text. */
interface SyncOptions { minServers?: number, timeoutMs?: number, callTimeoutMs?: number }

function syncOptions (flags: ParsedFlags): SyncOptions | string {
  const minServers = flags.ints.get('min_srv')
  const timeoutSeconds = flags.ints.get('timeout')
  if (timeoutSeconds !== undefined && minServers === undefined) return 'Minimum servers (-min_srv) option is missing'
  if (minServers !== undefined && (minServers < 1 || minServers > MIN_SRV_MAX)) return 'Invalid value for -min_srv.'
  if (timeoutSeconds === undefined) return minServers === undefined ? {} : { minServers }
  const timeoutMs = Math.min(timeoutSeconds * 1000, SYNC_TIMEOUT_MAX_MS)
  return { minServers, timeoutMs, callTimeoutMs: timeoutMs + TIMEOUT_MARGIN_MS }
}

/** The key-creation options of genSymKey, genRSAKeyPair and genECCKeyPair, or an error text. */
function creationOptions (flags: ParsedFlags): (KeyCreationOptions & { callTimeoutMs?: number }) | string {
  const session = flags.bools.has('sess')
  const shareWith = flags.ids.get('u')
  if (session && shareWith !== undefined) return 'sharing session keys is not allowed'
  const mValue = flags.ints.get('m_value')
  if (mValue !== undefined && mValue > M_VALUE_MAX) return 'Invalid value for -m_value (0 to 8).'
  const sync = syncOptions(flags)
  if (typeof sync === 'string') return sync
  const options: KeyCreationOptions & { callTimeoutMs?: number } = { label: flags.strings.get('l') ?? '' }
  const id = flags.strings.get('id')
  if (id !== undefined) options.id = id
  if (session) options.session = true
  if (flags.bools.has('nex')) options.extractable = false
  if (shareWith !== undefined) options.shareWith = shareWith
  if (mValue !== undefined) options.mValue = mValue
  if (sync.minServers !== undefined) options.minServers = sync.minServers
  if (sync.timeoutMs !== undefined) options.timeoutMs = sync.timeoutMs
  if (sync.callTimeoutMs !== undefined) options.callTimeoutMs = sync.callTimeoutMs
  return options
}

/** The attestation line the real tool prints after a key creation with -attest. */
function attestation (flags: ParsedFlags): string {
  return flags.bools.has('attest') ? '\n\tAttestation Check : [PASS]\n' : ''
}

/** Prints a fanned-out command's result line (first failure wins) and the per-node block. */
function printEach (ctx: KmuContext, op: string, outcomes: ReadonlyArray<{ nodeId: number, ok: boolean, code?: number }>): number {
  const nodes: NodeStatus[] = outcomes.map(o => ({ nodeId: o.nodeId, code: o.ok ? 0 : (o.code ?? LOCAL_FAILURE) }))
  const unavailable = ReturnCode.CLUSTER_SERVER_UNAVAILABLE.code
  const reached = nodes.filter(n => n.code !== unavailable)
  const failed = reached.find(n => n.code !== 0)
  const code = reached.length === 0 ? unavailable : (failed?.code ?? 0)
  ctx.write(resultLine(op, code))
  ctx.write(clusterStatus(nodes))
  return code
}

const USER_TYPES_KNOWN = new Set(['CU', 'CO', 'PCO', 'AU', 'PRECO', 'PO'])

async function loginHSM (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const userType = flags.strings.get('u')
  let password = flags.strings.get('p')
  const userName = flags.strings.get('s')
  if (userType === undefined) return usageError(ctx, 'loginHSM', 'User type (-u) is missing.')
  if (password === undefined && !flags.bools.has('hpswd')) return usageError(ctx, 'loginHSM', 'Password (-p) is missing.')
  if (!USER_TYPES_KNOWN.has(userType)) return usageError(ctx, 'loginHSM', 'Invalid user type specified.')
  if (userName === undefined) return usageError(ctx, 'loginHSM', 'Username (-s) is missing.')
  if (userType !== 'CU') {
    // "Only crypto users (CU) can log in to key_mgmt_util": refused before anything is sent.
    const code = ReturnCode.INVALID_USER_TYPE.code
    ctx.write(resultLine('Cfm3LoginHSM', code))
    ctx.write(clusterStatus(ctx.nodesAfter(code)))
    return code
  }
  if (password === undefined) {
    password = await ctx.io.readSecret('Enter password: ')
    if (password === undefined) return LOCAL_FAILURE
  }
  const outcomes = await ctx.callEach('login', { userType, userName, password })
  return printEach(ctx, 'Cfm3LoginHSM', outcomes)
}

async function logoutHSM (ctx: KmuContext): Promise<number> {
  return printEach(ctx, 'Cfm3LogoutHSM', await ctx.callEach('logout', {}))
}

async function genSymKey (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const options = creationOptions(flags)
  if (typeof options === 'string') return usageError(ctx, 'genSymKey', options)
  const { callTimeoutMs, ...creation } = options
  const keyType = flags.ints.get('t') ?? 0
  const sizeBytes = flags.ints.get('s') ?? 0
  const outcome = await ctx.call('generateSymmetricKey', { ...creation, keyType, sizeBytes }, callTimeoutMs)
  const code = outcome.ok ? 0 : outcome.code
  ctx.write(resultLine('Cfm3GenerateSymmetricKey', code, detailOf(outcome)))
  if (outcome.ok) ctx.write(`\n\tSymmetric Key Created.  Key Handle: ${outcome.result.handle}\n${attestation(flags)}`)
  ctx.write(clusterStatus(ctx.nodesAfter(code, creation.session === true)))
  return code
}

async function genKeyPair (ctx: KmuContext, flags: ParsedFlags, command: string, algorithm: { algorithm: 'RSA' | 'EC', modulusBits?: number, publicExponent?: number, curveId?: number }): Promise<number> {
  const options = creationOptions(flags)
  if (typeof options === 'string') return usageError(ctx, command, options)
  const { callTimeoutMs, ...creation } = options
  const outcome = await ctx.call('generateKeyPair', { ...creation, ...algorithm }, callTimeoutMs)
  const code = outcome.ok ? 0 : outcome.code
  ctx.write(resultLine('Cfm3GenerateKeyPair', code, detailOf(outcome)))
  if (outcome.ok) {
    const { publicHandle, privateHandle } = outcome.result
    ctx.write(`\n\tCfm3GenerateKeyPair:    public key handle: ${publicHandle}    private key handle: ${privateHandle}\n${attestation(flags)}`)
  }
  ctx.write(clusterStatus(ctx.nodesAfter(code, creation.session === true)))
  return code
}

/** The modulus a findKey -m file holds: hex text (as getAttribute writes it) or raw bytes. */
function modulusFromFile (bytes: Uint8Array): string {
  const text = Buffer.from(bytes).toString('utf8').replace(/^0x/i, '').replace(/\s+/g, '')
  if (/^[0-9a-f]+$/i.test(text)) return text.toLowerCase().replace(/^(00)+/, '')
  return Buffer.from(bytes).toString('hex').replace(/^(00)+/, '')
}

async function findKey (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const sess = flags.ints.get('sess')
  if (sess !== undefined && sess > 1) return usageError(ctx, 'findKey', 'Invalid value for -sess (0 or 1).')
  let modulus: string | undefined
  const modulusFile = flags.strings.get('m')
  if (modulusFile !== undefined) {
    const bytes = await ctx.readInput(modulusFile)
    if (bytes === undefined) {
      ctx.write(`${USAGE.findKey ?? ''}\n`)
      return LOCAL_FAILURE
    }
    modulus = modulusFromFile(bytes)
  }
  const args: { keyClass?: number, keyType?: number, label?: string, id?: string, session?: boolean, kcv?: string } = {}
  const keyClass = flags.ints.get('c')
  if (keyClass !== undefined) args.keyClass = keyClass
  const keyType = flags.ints.get('t')
  if (keyType !== undefined) args.keyType = keyType
  const label = flags.strings.get('l')
  if (label !== undefined) args.label = label
  const id = flags.strings.get('id')
  if (id !== undefined) args.id = id
  if (sess !== undefined) args.session = sess === 1
  const kcv = flags.strings.get('kcv')
  if (kcv !== undefined) args.kcv = kcv.replace(/^0x/i, '').toLowerCase()
  const outcome = await ctx.call('findKey', args)
  let code = outcome.ok ? 0 : outcome.code
  let handles = outcome.ok ? outcome.result.handles : []
  // -u and -m are filters the protocol does not carry: they are applied here, key by key.
  const users = flags.ids.get('u')
  if (outcome.ok && users !== undefined) {
    const kept: number[] = []
    for (const handle of handles) {
      const info = await ctx.call('getKeyInfo', { handle })
      if (!info.ok) { code = info.code; break }
      const holders = [info.result.owner, ...info.result.sharedWith]
      if (info.result.keyClass === KeyClass.PUBLIC || users.every(u => holders.includes(u))) kept.push(handle)
    }
    handles = kept
  }
  if (code === 0 && modulus !== undefined) {
    const kept: number[] = []
    for (const handle of handles) {
      const attr = await ctx.call('getAttribute', { handle, attribute: Attribute.MODULUS })
      if (!attr.ok) continue
      const value = attr.result.attributes.find(a => a.id === Attribute.MODULUS)?.value
      const hex = value instanceof Uint8Array ? Buffer.from(value).toString('hex') : typeof value === 'string' ? value.toLowerCase() : ''
      if (hex.replace(/^(00)+/, '') === modulus) kept.push(handle)
    }
    handles = kept
  }
  if (code === 0) ctx.write(findKeyList(handles))
  ctx.write(clusterStatus(ctx.nodesAfter(code)))
  ctx.write(resultLine('Cfm3FindKey', code))
  return code
}

async function getKeyInfo (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const outcome = await ctx.call('getKeyInfo', { handle: flags.ints.get('k') ?? 0 })
  const code = outcome.ok ? 0 : outcome.code
  ctx.write(resultLine('Cfm3GetKey', code))
  if (outcome.ok) ctx.write(keyInfoText(outcome.result))
  return code
}

async function getAttribute (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const attribute = flags.ints.get('a') ?? 0
  const file = flags.strings.get('out') ?? ''
  const outcome = await ctx.call('getAttribute', { handle: flags.ints.get('o') ?? 0, attribute })
  if (!outcome.ok) {
    ctx.write(resultLine('Cfm3GetAttribute', outcome.code))
    return outcome.code
  }
  const all = attribute === Attribute.ALL
  const dump = attributeDump(outcome.result.attributes, all)
  if (!await ctx.writeOutput(file, dump.file)) return LOCAL_FAILURE
  ctx.write(`\n${dump.summary === undefined ? '' : `${dump.summary}\n`}Written to: ${file} file\n`)
  ctx.write(resultLine('Cfm3GetAttribute', 0))
  return 0
}

async function setAttribute (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const attribute = flags.ints.get('a') ?? 0
  if (attribute !== Attribute.TOKEN) {
    ctx.write('\n\tThis attribute is either not modifiable or unknown\n')
    return LOCAL_FAILURE
  }
  ctx.write('\t\tThis attribute is defined as a boolean value.\n')
  const answer = await ctx.io.readLine('\t\tEnter the boolean attribute value (0 or 1):')
  if (answer === undefined || !/^\s*\d+\s*$/.test(answer)) {
    ctx.write('\nError reading the user input value\n')
    return LOCAL_FAILURE
  }
  const value = Number(answer.trim()) === 0 ? 0 : 1
  const outcome = await ctx.call('setAttribute', { handle: flags.ints.get('o') ?? 0, attribute, value })
  const code = outcome.ok ? 0 : outcome.code
  ctx.write(resultLine('Cfm3SetAttribute', code, detailOf(outcome)))
  ctx.write(clusterStatus(ctx.nodesAfter(code)))
  return code
}

async function deleteKey (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const outcome = await ctx.call('deleteKey', { handle: flags.ints.get('k') ?? 0 })
  const code = outcome.ok ? 0 : outcome.code
  // The real tool looks the key up first, so an unknown handle is reported by Cfm3FindKey (AWS deleteKey page).
  ctx.write(resultLine(code === ReturnCode.INVALID_HANDLE.code ? 'Cfm3FindKey' : 'Cfm3DeleteKey', code, detailOf(outcome)))
  ctx.write(clusterStatus(ctx.nodesAfter(code)))
  return code
}

/** wrapKey/unWrapKey -m: NIST_AES_WRAP (4) unless told otherwise. */
const DEFAULT_WRAP_MECHANISM = 4

async function wrapKey (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const file = flags.strings.get('out') ?? ''
  const outcome = await ctx.call('wrapKey', {
    handle: flags.ints.get('k') ?? 0,
    wrappingHandle: flags.ints.get('w') ?? 0,
    mechanism: flags.ints.get('m') ?? DEFAULT_WRAP_MECHANISM
  })
  if (!outcome.ok) {
    ctx.write(resultLine('Cfm2WrapKey', outcome.code))
    return outcome.code
  }
  const wrapped = outcome.result.wrapped
  if (!await ctx.writeOutput(file, wrapped)) return LOCAL_FAILURE
  ctx.write(`\n\tKey Wrapped.\n\n\tWrapped Key written to file "${file}" length ${wrapped.length}\n`)
  ctx.write(resultLine('Cfm2WrapKey', 0))
  return 0
}

async function unWrapKey (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const options = creationOptions(flags)
  if (typeof options === 'string') return usageError(ctx, 'unWrapKey', options)
  // -noheader: a key wrapped outside key_mgmt_util; the class, type and label come from the flags.
  const noHeader = flags.bools.has('noheader')
  const keyClass = flags.ints.get('kc')
  const keyType = flags.ints.get('kt')
  if (noHeader) {
    if (options.label === '') return usageError(ctx, 'unWrapKey', 'Key label (-l) is missing.')
    if (keyClass === undefined) return usageError(ctx, 'unWrapKey', 'Key class (-kc) is missing.')
    if (keyType === undefined) return usageError(ctx, 'unWrapKey', 'Key type (-kt) is missing.')
  } else if (keyClass !== undefined || keyType !== undefined) {
    return usageError(ctx, 'unWrapKey', '-kc and -kt are only taken with -noheader.')
  }
  const wrapped = await ctx.readInput(flags.strings.get('f') ?? '')
  if (wrapped === undefined) {
    ctx.write(`${USAGE.unWrapKey ?? ''}\n`)
    return LOCAL_FAILURE
  }
  const { callTimeoutMs, label, ...rest } = options
  const outcome = await ctx.call('unwrapKey', {
    ...rest,
    ...(label === '' ? {} : { label }),
    ...(noHeader ? { keyClass, keyType } : {}),
    wrapped,
    wrappingHandle: flags.ints.get('w') ?? 0,
    mechanism: flags.ints.get('m') ?? DEFAULT_WRAP_MECHANISM
  }, callTimeoutMs)
  const code = outcome.ok ? 0 : outcome.code
  if (noHeader) {
    // The AWS page's -noheader example: the template and the unwrap are two calls, and the
    // handle line has one space after the period.
    ctx.write(resultLine('Cfm3CreateUnwrapTemplate2', 0))
    ctx.write(`\t${resultLine('Cfm2UnWrapWithTemplate3', code, detailOf(outcome)).slice(1)}`)
    if (outcome.ok) ctx.write(`\n\tKey Unwrapped. Key Handle: ${outcome.result.handle}\n${attestation(flags)}`)
  } else {
    ctx.write(resultLine('Cfm3UnWrapKey', code, detailOf(outcome)))
    if (outcome.ok) ctx.write(`\n\tKey Unwrapped.  Key Handle: ${outcome.result.handle}\n${attestation(flags)}`)
  }
  ctx.write(clusterStatus(ctx.nodesAfter(code, rest.session === true)))
  return code
}

async function exportPrivateKey (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const mechanism = flags.ints.get('m')
  if (mechanism !== undefined && mechanism !== DEFAULT_WRAP_MECHANISM) {
    return usageError(ctx, 'exportPrivateKey', 'Invalid wrapping mechanism (-m): the only valid value is 4.')
  }
  const file = flags.strings.get('out') ?? ''
  const outcome = await ctx.call('exportPrivateKey', { handle: flags.ints.get('k') ?? 0, wrappingHandle: flags.ints.get('w') ?? 0 })
  if (!outcome.ok) {
    ctx.write(resultLine('Cfm3WrapKey', outcome.code))
    return outcome.code
  }
  ctx.write(resultLine('Cfm3WrapKey', 0))
  ctx.write(resultLine('Cfm3UnWrapHostKey', 0))
  if (!await ctx.writeOutput(file, outcome.result.pem)) return LOCAL_FAILURE
  ctx.write(`\nPEM formatted private key is written to ${file}\n`)
  return 0
}

async function sign (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const data = await ctx.readInput(flags.strings.get('f') ?? '')
  if (data === undefined) {
    ctx.write(`${USAGE.sign ?? ''}\n`)
    return LOCAL_FAILURE
  }
  const file = flags.strings.get('out') ?? ''
  const outcome = await ctx.call('sign', { handle: flags.ints.get('k') ?? 0, mechanism: flags.ints.get('m') ?? 0, data })
  let code = outcome.ok ? 0 : outcome.code
  ctx.write(resultLine('Cfm3Sign', code))
  if (outcome.ok) {
    if (await ctx.writeOutput(file, outcome.result.signature)) ctx.write(`\n\tsignature is written to file ${file}\n`)
    else code = LOCAL_FAILURE
  }
  ctx.write(clusterStatus(ctx.nodesAfter(outcome.ok ? 0 : code)))
  return code
}

async function verify (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const data = await ctx.readInput(flags.strings.get('f') ?? '')
  const signature = data === undefined ? undefined : await ctx.readInput(flags.strings.get('s') ?? '')
  if (data === undefined || signature === undefined) {
    ctx.write(`${USAGE.verify ?? ''}\n`)
    return LOCAL_FAILURE
  }
  const outcome = await ctx.call('verify', { handle: flags.ints.get('k') ?? 0, mechanism: flags.ints.get('m') ?? 0, data, signature })
  const code = outcome.ok ? 0 : outcome.code
  if (outcome.ok) ctx.write('\n\tSignature verification successful\n')
  if (code === ReturnCode.BAD_PKCS_DATA.code) {
    // The AWS verify page's failure: the code alone, then the message on its own line.
    ctx.write(`\tCfm3Verify returned: ${formatReturnCode(code)}\n\n\t${describeReturnCode(code).message}\n`)
  } else {
    ctx.write(resultLine('Cfm3Verify', code))
  }
  return code
}

async function exportPubKey (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const file = flags.strings.get('out') ?? ''
  const outcome = await ctx.call('exportPublicKey', { handle: flags.ints.get('k') ?? 0 })
  if (!outcome.ok) {
    ctx.write(resultLine('Cfm3ExportPubKey', outcome.code))
    return outcome.code
  }
  if (!await ctx.writeOutput(file, outcome.result.pem)) return LOCAL_FAILURE
  ctx.write(`\nPEM formatted public key is written to ${file}\n`)
  ctx.write(resultLine('Cfm3ExportPubKey', 0))
  return 0
}

/** getCert's certificate types (its page): 1 manufacturer root, 2 manufacturer hardware, 4 customer root, 8 and 16 cluster. */
const CERTIFICATE_TYPES: readonly number[] = [1, 2, 4, 8, 16]

/**
 * getCert: the page's syntax names the type `-t`, its example and parameter list `-s`: both are
 * taken. Its one line, `Cfm3GetCert() returned 0 :HSM Return: SUCCESS`, prints the code in
 * decimal, and so do its failures.
 */
async function getCert (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const t = flags.ints.get('t')
  const s = flags.ints.get('s')
  if (t !== undefined && s !== undefined && t !== s) return usageError(ctx, 'getCert', 'Give the certificate type once (-t or -s).')
  const certType = t ?? s
  if (certType === undefined) return usageError(ctx, 'getCert', 'Certificate type (-t) is missing.')
  if (!CERTIFICATE_TYPES.includes(certType)) return usageError(ctx, 'getCert', `Invalid certificate type ${certType}: one of ${CERTIFICATE_TYPES.join(', ')}.`)
  const line = (code: number): string => `\nCfm3GetCert() returned ${code} :${describeReturnCode(code).message}\n`
  const outcome = await ctx.call('getCertificate', { certType })
  if (!outcome.ok) {
    ctx.write(line(outcome.code))
    return outcome.code
  }
  if (!await ctx.writeOutput(flags.strings.get('f') ?? '', outcome.result.pem)) return LOCAL_FAILURE
  ctx.write(line(0))
  return 0
}

/** aesWrapUnwrap's default IV (RFC 3394), as the real tool names it when -i is missing. */
const DEFAULT_AES_WRAP_IV = 'A6A6A6A6A6A6A6A6'
/** aesWrapUnwrap takes files of less than 4 KB (the AWS page). */
const AES_WRAP_FILE_BYTES_MAX = 4095

async function aesWrapUnwrap (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const mode = flags.ints.get('m') ?? -1
  if (mode !== 0 && mode !== 1) return usageError(ctx, 'aesWrapUnwrap', 'Invalid mode (-m): 1 to wrap, 0 to unwrap.')
  const ivText = flags.strings.get('i')
  if (ivText !== undefined && !/^(0x)?[0-9a-f]{16}$/i.test(ivText)) {
    return usageError(ctx, 'aesWrapUnwrap', `Invalid IV (-i) '${ivText}': 8 bytes in hexadecimal (0xA6A6A6A6A6A6A6A6).`)
  }
  const data = await ctx.readInput(flags.strings.get('f') ?? '')
  if (data === undefined) {
    ctx.write(`${USAGE.aesWrapUnwrap ?? ''}\n`)
    return LOCAL_FAILURE
  }
  if (data.length > AES_WRAP_FILE_BYTES_MAX) return usageError(ctx, 'aesWrapUnwrap', `The file holds ${data.length} bytes; aesWrapUnwrap takes less than 4096.`)
  const unwrap = mode === 0
  const op = unwrap ? 'Cfm3UnWrapHostKey' : 'Cfm3WrapHostKey'
  if (ivText === undefined) ctx.write(`\n\tWarning: IV (-i) is missing.\n\t\t 0x${DEFAULT_AES_WRAP_IV} is considered as default IV\n`)
  const iv = ivText === undefined ? undefined : new Uint8Array(Buffer.from(ivText.replace(/^0x/i, ''), 'hex'))
  const outcome = await ctx.call('aesWrapData', { wrappingHandle: flags.ints.get('w') ?? 0, unwrap, data, ...(iv === undefined ? {} : { iv }) })
  if (!outcome.ok) {
    ctx.write(resultLine(op, outcome.code))
    return outcome.code
  }
  const result = outcome.result.data
  const rows = Buffer.from(result).toString('hex').toUpperCase().match(/.{1,16}/g) ?? []
  ctx.write(`result data:\n${rows.map(r => `${r.match(/../g)?.join(' ') ?? ''}\n`).join('')}`)
  const file = flags.strings.get('out') ?? (unwrap ? 'unwrapped_key' : 'wrapped_key')
  if (!await ctx.writeOutput(file, result)) return LOCAL_FAILURE
  ctx.write(`\nresult written to file ${file}\n`)
  ctx.write(resultLine(op, 0))
  return 0
}

async function extractMaskedObject (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const file = flags.strings.get('out') ?? ''
  const outcome = await ctx.call('extractMaskedObject', { kind: 'key', handle: flags.ints.get('o') ?? 0 })
  if (!outcome.ok) {
    ctx.write(resultLine('Cfm3ExtractMaskedObject', outcome.code))
    return outcome.code
  }
  if (!await ctx.writeOutput(file, outcome.result.blob)) return LOCAL_FAILURE
  ctx.write(`\n\tObject was masked and written to file "${file}"\n`)
  ctx.write(resultLine('Cfm3ExtractMaskedObject', 0))
  return 0
}

async function insertMaskedObject (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const sync = syncOptions(flags)
  if (typeof sync === 'string') return usageError(ctx, 'insertMaskedObject', sync)
  const blob = await ctx.readInput(flags.strings.get('f') ?? '')
  if (blob === undefined) {
    ctx.write(`${USAGE.insertMaskedObject ?? ''}\n`)
    return LOCAL_FAILURE
  }
  const { callTimeoutMs, ...rest } = sync
  const outcome = await ctx.call('insertMaskedObject', { blob, ...rest }, callTimeoutMs)
  const code = outcome.ok ? 0 : outcome.code
  ctx.write(resultLine('Cfm3InsertMaskedObject', code, detailOf(outcome)))
  if (outcome.ok) ctx.write(`\tNew Key Handle: ${outcome.result.handle ?? outcome.result.userId ?? 0}\n`)
  ctx.write(clusterStatus(ctx.nodesAfter(code)))
  return code
}

async function listUsers (ctx: KmuContext): Promise<number> {
  const outcomes = await ctx.callEach('listUsers', {})
  const answered = outcomes.flatMap(o => o.ok ? [o.result.users] : [])
  if (answered.length === 0) {
    const unavailable = ReturnCode.CLUSTER_SERVER_UNAVAILABLE.code
    const failure = outcomes.find((o): o is { nodeId: number, ok: false, code: number } => !o.ok && o.code !== unavailable)
    const code = failure?.code ?? unavailable
    ctx.write(resultLine('Cfm3ListUsers', code))
    return code
  }
  ctx.write(listUsersText(mergeUsers(answered)))
  ctx.write(resultLine('Cfm3ListUsers', 0))
  return 0
}

async function error2String (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const text = flags.strings.get('r') ?? ''
  if (!/^0x[0-9a-f]{1,8}$/i.test(text)) {
    return usageError(ctx, 'Error2String', `Invalid response code '${text}': type it in hexadecimal with the 0x prefix (-r 0xdb).`)
  }
  ctx.write(errorToString(Number.parseInt(text.slice(2), 16)))
  return 0
}

async function listAttributes (ctx: KmuContext): Promise<number> {
  ctx.write(listAttributesText())
  return 0
}

/**
 * The AES key of a -wk file, or undefined after printing why (nothing is sent then): the file
 * must hold 16, 24 or 32 bytes, the same key as the HSM's -w key.
 */
async function wrappingKeyFile (ctx: KmuContext, command: string, file: string): Promise<Uint8Array | undefined> {
  const key = await ctx.readInput(file)
  if (key === undefined) {
    ctx.write(`${USAGE[command] ?? ''}\n`)
    return undefined
  }
  if (!isAesKey(key)) {
    usageError(ctx, command, `The wrapping key file (-wk) "${file}" holds ${key.length} bytes: a plaintext AES key is 16, 24 or 32 bytes.`)
    return undefined
  }
  return key
}

async function exSymKey (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const mechanism = flags.ints.get('m')
  if (mechanism !== undefined && mechanism !== DEFAULT_WRAP_MECHANISM) {
    return usageError(ctx, 'exSymKey', 'Invalid wrapping mechanism (-m): the only valid value is 4.')
  }
  const hostKeyFile = flags.strings.get('wk')
  const hostKey = hostKeyFile === undefined ? undefined : await wrappingKeyFile(ctx, 'exSymKey', hostKeyFile)
  if (hostKeyFile !== undefined && hostKey === undefined) return LOCAL_FAILURE
  const wrappingHandle = flags.ints.get('w') ?? 0
  // Cfm3WrapKey: the HSM wraps the key (a secret key the caller owns, extractable) and sends the
  // wrapped bytes alone; the plaintext exists on the host only once unwrapped, for the file.
  const wrap = await ctx.call('wrapKey', {
    handle: flags.ints.get('k') ?? 0, wrappingHandle, mechanism: DEFAULT_WRAP_MECHANISM, noHeader: true, keyClass: KeyClass.SECRET
  })
  const wrapCode = wrap.ok ? 0 : wrap.code
  ctx.write(resultLine('Cfm3WrapKey', wrapCode))
  if (!wrap.ok) return wrapCode
  let plain: Uint8Array
  if (hostKey !== undefined) {
    // -wk: the key file unwraps, on the host; the page prints no Cfm3UnWrapHostKey line then.
    const unwrapped = hostKeyUnwrap(hostKey, wrap.result.wrapped)
    if (unwrapped === undefined) {
      ctx.write(errorLine(`The key in "${hostKeyFile ?? ''}" does not unwrap what key ${wrappingHandle} wrapped: -w and -wk must be the same key.`))
      return LOCAL_FAILURE
    }
    plain = unwrapped
  } else {
    // Cfm3UnWrapHostKey: the wrapping key never leaves the HSM, so the HSM unwraps for the host.
    const unwrap = await ctx.call('aesWrapData', { wrappingHandle, unwrap: true, data: wrap.result.wrapped, keyWrap: true })
    const unwrapCode = unwrap.ok ? 0 : unwrap.code
    ctx.write(resultLine('Cfm3UnWrapHostKey', unwrapCode))
    if (!unwrap.ok) return unwrapCode
    plain = unwrap.result.data
    ctx.write('\n')
  }
  const file = flags.strings.get('out') ?? ''
  if (!await ctx.writeOutput(file, plain)) return LOCAL_FAILURE
  ctx.write(`\nWrapped Symmetric Key written to file "${file}"\n`)
  return 0
}

/**
 * The import flow of imSymKey and importPrivateKey: Cfm3WrapHostKey (the HSM wraps the plaintext
 * with the -w key; with -wk the host wraps it with the file's key and the line is not printed),
 * Cfm3CreateUnwrapTemplate (the template is the class, type and creation flags, made on the
 * host), Cfm3UnWrapKey (the HSM unwraps it into a new key). Returns the return code of the step
 * it ended with.
 */
async function importThroughWrap (
  ctx: KmuContext, command: string, flags: ParsedFlags, plain: Uint8Array, keyClass: number, keyType: number, what: string
): Promise<number> {
  const options = creationOptions(flags)
  if (typeof options === 'string') return usageError(ctx, command, options)
  const hostKeyFile = flags.strings.get('wk')
  const hostKey = hostKeyFile === undefined ? undefined : await wrappingKeyFile(ctx, command, hostKeyFile)
  if (hostKeyFile !== undefined && hostKey === undefined) return LOCAL_FAILURE
  const wrappingHandle = flags.ints.get('w') ?? 0
  let wrapped: Uint8Array
  if (hostKey !== undefined) {
    wrapped = hostKeyWrap(hostKey, plain)
  } else {
    const wrap = await ctx.call('aesWrapData', { wrappingHandle, unwrap: false, data: plain, keyWrap: true })
    const wrapCode = wrap.ok ? 0 : wrap.code
    ctx.write(resultLine('Cfm3WrapHostKey', wrapCode))
    if (!wrap.ok) return wrapCode
    wrapped = wrap.result.data
  }
  ctx.write(resultLine('Cfm3CreateUnwrapTemplate', 0))
  const { callTimeoutMs, ...creation } = options
  const outcome = await ctx.call('unwrapKey', { ...creation, wrapped, wrappingHandle, mechanism: DEFAULT_WRAP_MECHANISM, keyClass, keyType }, callTimeoutMs)
  const code = outcome.ok ? 0 : outcome.code
  ctx.write(resultLine('Cfm3UnWrapKey', code))
  if (outcome.ok) ctx.write(`\n\t${what} Key Unwrapped.  Key Handle: ${outcome.result.handle}\n${attestation(flags)}`)
  ctx.write(clusterStatus(ctx.nodesAfter(code, creation.session === true)))
  return code
}

/** imSymKey -t: the types its page allows (3DES and AES). */
const IMPORTABLE_SYMMETRIC_TYPES: readonly number[] = [KeyType.DES3, KeyType.AES]

async function imSymKey (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const keyType = flags.ints.get('t') ?? 0
  if (!IMPORTABLE_SYMMETRIC_TYPES.includes(keyType)) return usageError(ctx, 'imSymKey', `Invalid key type (-t) ${keyType}: 21 (3DES) or 31 (AES).`)
  const file = flags.strings.get('f') ?? ''
  const plain = await ctx.readInput(file)
  if (plain === undefined) {
    ctx.write(`${USAGE.imSymKey ?? ''}\n`)
    return LOCAL_FAILURE
  }
  return await importThroughWrap(ctx, 'imSymKey', flags, plain, KeyClass.SECRET, keyType, 'Symmetric')
}

async function importPrivateKey (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const file = flags.strings.get('f') ?? ''
  const bytes = await ctx.readInput(file)
  if (bytes === undefined) {
    ctx.write(`${USAGE.importPrivateKey ?? ''}\n`)
    return LOCAL_FAILURE
  }
  const key = privateKeyDer(bytes)
  if (key === undefined) return usageError(ctx, 'importPrivateKey', `"${file}" does not hold an unencrypted RSA or EC private key in PEM format.`)
  ctx.write(`\nBER encoded key length is ${key.der.length}\n`)
  return await importThroughWrap(ctx, 'importPrivateKey', flags, key.der, KeyClass.PRIVATE, key.keyType, 'Private')
}

async function importPubKey (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const options = creationOptions(flags)
  if (typeof options === 'string') return usageError(ctx, 'importPubKey', options)
  const file = flags.strings.get('f') ?? ''
  const bytes = await ctx.readInput(file)
  if (bytes === undefined) {
    ctx.write(`${USAGE.importPubKey ?? ''}\n`)
    return LOCAL_FAILURE
  }
  const spki = publicKeyDer(bytes)
  if (spki === undefined) return usageError(ctx, 'importPubKey', `"${file}" does not hold an RSA or EC public key in PEM format (-----BEGIN PUBLIC KEY-----).`)
  const { callTimeoutMs, ...creation } = options
  const outcome = await ctx.call('importPublicKey', { ...creation, spki }, callTimeoutMs)
  const code = outcome.ok ? 0 : outcome.code
  ctx.write(resultLine('Cfm3CreatePublicKey', code))
  if (outcome.ok) ctx.write(`\n\tPublic Key Handle: ${outcome.result.handle}\n`)
  ctx.write(clusterStatus(ctx.nodesAfter(code, creation.session === true)))
  return code
}

/**
 * findSingleKey: the key's digest from every HSM. A node that does not have the key answers
 * 0xa8; a node whose copy differs from the one most nodes hold (ties: the first node's) gets
 * 0x3000008a; an unreachable node 0x30000085. The result line is the first failure, as the key
 * is "on all HSMs" only when every node answered with the same digest.
 */
async function findSingleKey (ctx: KmuContext, flags: ParsedFlags): Promise<number> {
  const outcomes = await ctx.callEach('keyDigest', { handle: flags.ints.get('k') ?? 0 })
  const counts = new Map<string, number>()
  for (const o of outcomes) if (o.ok) counts.set(o.result.hash, (counts.get(o.result.hash) ?? 0) + 1)
  let reference: string | undefined
  for (const [hash, count] of counts) if (reference === undefined || count > (counts.get(reference) ?? 0)) reference = hash
  const mismatch = ReturnCode.KEY_NOT_SYNCHRONIZED.code
  const nodes: NodeStatus[] = outcomes.map(o => ({ nodeId: o.nodeId, code: o.ok ? (o.result.hash === reference ? 0 : mismatch) : o.code }))
  const code = nodes.find(n => n.code !== 0)?.code ?? 0
  // The page prints the result line right under the command, without the blank line before it.
  ctx.write(resultLine('Cfm3FindKey', code).replace(/^\n\t/, ''))
  ctx.write(clusterStatus(nodes))
  return code
}

const HANDLE_K: FlagSpec = { flag: '-k', kind: 'int', what: 'Key handle', required: true }
const SYNC_FLAGS: readonly FlagSpec[] = [
  { flag: '-min_srv', kind: 'int', what: 'Minimum servers' },
  { flag: '-timeout', kind: 'int', what: 'Timeout' }
]

/** Every simulated command, by its exact (case-sensitive) name. */
export const COMMANDS: Readonly<Record<string, KmuCommand>> = {
  loginHSM: {
    flags: [
      { flag: '-u', kind: 'string', what: 'User type' },
      { flag: '-s', kind: 'string', what: 'Username' },
      { flag: '-p', kind: 'string', what: 'Password' },
      { flag: '-hpswd', kind: 'bool', what: 'Password prompt' }
    ],
    unsupported: ['-2fa'],
    run: loginHSM
  },
  logoutHSM: { flags: [], run: logoutHSM },
  genSymKey: {
    flags: [
      { flag: '-t', kind: 'int', what: 'Key type', required: true },
      { flag: '-s', kind: 'int', what: 'Key size', required: true },
      ...CREATION_FLAGS
    ],
    run: genSymKey
  },
  genRSAKeyPair: {
    flags: [
      { flag: '-m', kind: 'int', what: 'Modulus length', required: true },
      { flag: '-e', kind: 'int', what: 'Public exponent', required: true },
      ...CREATION_FLAGS
    ],
    run: async (ctx, flags) => await genKeyPair(ctx, flags, 'genRSAKeyPair', {
      algorithm: 'RSA', modulusBits: flags.ints.get('m') ?? 0, publicExponent: flags.ints.get('e') ?? 0
    })
  },
  genECCKeyPair: {
    flags: [{ flag: '-i', kind: 'int', what: 'Curve id', required: true }, ...CREATION_FLAGS],
    run: async (ctx, flags) => await genKeyPair(ctx, flags, 'genECCKeyPair', { algorithm: 'EC', curveId: flags.ints.get('i') ?? 0 })
  },
  findKey: {
    flags: [
      { flag: '-c', kind: 'int', what: 'Key class' },
      { flag: '-t', kind: 'int', what: 'Key type' },
      { flag: '-l', kind: 'string', what: 'Key label' },
      { flag: '-id', kind: 'string', what: 'Key ID' },
      { flag: '-sess', kind: 'int', what: 'Session' },
      { flag: '-u', kind: 'ids', what: 'Users' },
      { flag: '-m', kind: 'string', what: 'Modulus file' },
      { flag: '-kcv', kind: 'string', what: 'Key check value' }
    ],
    run: findKey
  },
  getKeyInfo: { flags: [HANDLE_K], run: getKeyInfo },
  getAttribute: {
    flags: [
      { flag: '-o', kind: 'int', what: 'Object handle', required: true },
      { flag: '-a', kind: 'int', what: 'Attribute', required: true },
      { flag: '-out', kind: 'string', what: 'Output file', required: true }
    ],
    run: getAttribute
  },
  setAttribute: {
    flags: [
      { flag: '-o', kind: 'int', what: 'Object handle', required: true },
      { flag: '-a', kind: 'int', what: 'Attribute', required: true }
    ],
    run: setAttribute
  },
  deleteKey: { flags: [HANDLE_K], run: deleteKey },
  wrapKey: {
    flags: [
      { flag: '-k', kind: 'int', what: 'Handle of key to wrap', required: true },
      { flag: '-w', kind: 'int', what: 'Handle of wrapping Key', required: true },
      { flag: '-out', kind: 'string', what: 'Wrapped key file', required: true },
      { flag: '-m', kind: 'int', what: 'Wrapping mechanism' }
    ],
    unsupported: ['-noheader', '-aad', '-t', '-i', '-iv_file', '-tag_size'],
    run: wrapKey
  },
  unWrapKey: {
    flags: [
      { flag: '-f', kind: 'string', what: 'Key filename', required: true },
      { flag: '-w', kind: 'int', what: 'Handle of unwrapping Key', required: true },
      { flag: '-m', kind: 'int', what: 'Wrapping mechanism' },
      ...CREATION_FLAGS.map(f => f.flag === '-l' ? { ...f, required: false } : f),
      { flag: '-noheader', kind: 'bool', what: 'No header' },
      { flag: '-kc', kind: 'int', what: 'Key class' },
      { flag: '-kt', kind: 'int', what: 'Key type' }
    ],
    unsupported: ['-aad', '-t', '-i', '-iv_file', '-tag_size'],
    run: unWrapKey
  },
  exportPrivateKey: {
    flags: [
      { flag: '-k', kind: 'int', what: 'Handle of key to export', required: true },
      { flag: '-w', kind: 'int', what: 'Handle of wrapping Key', required: true },
      { flag: '-out', kind: 'string', what: 'Key File', required: true },
      { flag: '-m', kind: 'int', what: 'Wrapping mechanism' }
    ],
    unsupported: ['-wk'],
    run: exportPrivateKey
  },
  exportPubKey: {
    flags: [
      { flag: '-k', kind: 'int', what: 'Public Key handle', required: true },
      { flag: '-out', kind: 'string', what: 'Key File', required: true }
    ],
    run: exportPubKey
  },
  getCert: {
    flags: [
      { flag: '-f', kind: 'string', what: 'Certificate file', required: true },
      { flag: '-t', kind: 'int', what: 'Certificate type' },
      { flag: '-s', kind: 'int', what: 'Certificate type' }
    ],
    run: getCert
  },
  aesWrapUnwrap: {
    flags: [
      { flag: '-m', kind: 'int', what: 'Mode', required: true },
      { flag: '-f', kind: 'string', what: 'File name', required: true },
      { flag: '-w', kind: 'int', what: 'Wrapping key handle', required: true },
      { flag: '-i', kind: 'string', what: 'IV' },
      { flag: '-out', kind: 'string', what: 'Output file' }
    ],
    run: aesWrapUnwrap
  },
  sign: {
    flags: [
      { flag: '-f', kind: 'string', what: 'Message file', required: true },
      { flag: '-k', kind: 'int', what: 'Private Key', required: true },
      { flag: '-m', kind: 'int', what: 'Mechanism', required: true },
      { flag: '-out', kind: 'string', what: 'Signature File', required: true }
    ],
    run: sign
  },
  verify: {
    flags: [
      { flag: '-f', kind: 'string', what: 'Message file', required: true },
      { flag: '-s', kind: 'string', what: 'Signature file', required: true },
      { flag: '-k', kind: 'int', what: 'Public Key', required: true },
      { flag: '-m', kind: 'int', what: 'Mechanism', required: true }
    ],
    run: verify
  },
  extractMaskedObject: {
    flags: [
      { flag: '-o', kind: 'int', what: 'Object handle', required: true },
      { flag: '-out', kind: 'string', what: 'Output file', required: true }
    ],
    run: extractMaskedObject
  },
  insertMaskedObject: {
    flags: [{ flag: '-f', kind: 'string', what: 'Masked object file', required: true }, ...SYNC_FLAGS],
    run: insertMaskedObject
  },
  exSymKey: {
    flags: [
      { flag: '-k', kind: 'int', what: 'Handle of key to export', required: true },
      { flag: '-w', kind: 'int', what: 'Handle of wrapping Key', required: true },
      { flag: '-out', kind: 'string', what: 'Key File', required: true },
      { flag: '-m', kind: 'int', what: 'Wrapping mechanism' },
      { flag: '-wk', kind: 'string', what: 'Unwrapping key file' }
    ],
    run: exSymKey
  },
  imSymKey: {
    flags: [
      { flag: '-f', kind: 'string', what: 'Key file', required: true },
      { flag: '-w', kind: 'int', what: 'Handle of wrapping Key', required: true },
      { flag: '-t', kind: 'int', what: 'Key type', required: true },
      ...CREATION_FLAGS.filter(f => f.flag !== '-nex' && f.flag !== '-m_value'),
      { flag: '-wk', kind: 'string', what: 'Wrapping key file' }
    ],
    run: imSymKey
  },
  importPrivateKey: {
    flags: [
      ...CREATION_FLAGS.filter(f => f.flag !== '-nex'),
      { flag: '-f', kind: 'string', what: 'Key file', required: true },
      { flag: '-w', kind: 'int', what: 'Handle of wrapping Key', required: true },
      { flag: '-wk', kind: 'string', what: 'Wrapping key file' }
    ],
    run: importPrivateKey
  },
  importPubKey: {
    flags: [
      { flag: '-l', kind: 'string', what: 'Key label', required: true },
      { flag: '-f', kind: 'string', what: 'Key file', required: true },
      { flag: '-sess', kind: 'bool', what: 'Session key' },
      { flag: '-id', kind: 'string', what: 'Key ID' },
      ...SYNC_FLAGS
    ],
    run: importPubKey
  },
  findSingleKey: { flags: [HANDLE_K], run: findSingleKey },
  listUsers: { flags: [], run: listUsers },
  listAttributes: { flags: [], run: listAttributes },
  Error2String: { flags: [{ flag: '-r', kind: 'string', what: 'Response code', required: true }], run: error2String }
}
