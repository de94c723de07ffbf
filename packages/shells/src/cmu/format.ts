/**
 * What cloudhsm_mgmt_util prints, line by line, as pure functions of the HSMs' answers. Every
 * layout here is taken from the AWS examples (shared/reference/cloudhsm.md, A.3 and A.7–A.10, C.1);
 * where the examples disagree or are silent, docs/cmu.md says which choice was made. Each function
 * returns lines without their newline.
 */
import { CMU_ATTRIBUTE_ORDER, attributeName } from '@hsmlab/protocol'
import type { AttributeValue, HsmInfo, KeyAttribute, KeyInfo, KeyListing, QuorumTokenInfo, UserInfo } from '@hsmlab/protocol'

/** `server 0(10.0.2.9)`: how every per-server line names a server. */
export function serverLabel (id: number, name: string): string {
  return `server ${id}(${name})`
}

// ---- start-up trace (A.3) ----

/** The two lines CMU prints before it connects. */
export const STARTUP_BANNER: readonly string[] = [
  'Connecting to the server(s), it may take time',
  'depending on the server(s) load, please wait...'
]

/** `Connecting to server '<name>': hostname '<hostname>', port <port>...` */
export function connectingLine (name: string, hostname: string, port: number): string {
  return `Connecting to server '${name}': hostname '${hostname}', port ${port}...`
}

/** `Connected to server '<name>': hostname '<hostname>', port <port>.` */
export function connectedLine (name: string, hostname: string, port: number): string {
  return `Connected to server '${name}': hostname '${hostname}', port ${port}.`
}

/** `Connection to server <hostname>(<hostname>) on port <port> failed:<reason>` (no space after the colon). */
export function connectionFailedLine (hostname: string, port: number, reason: string): string {
  return `Connection to server ${hostname}(${hostname}) on port ${port} failed:${reason}`
}

// ---- confirmation and failures (A.5) ----

/** The banner of every critical command, without the question. */
export const CAUTION_BANNER: readonly string[] = [
  '*************************CAUTION********************************',
  'This is a CRITICAL operation, should be done on all nodes in the',
  'cluster. AWS does NOT synchronize these changes automatically with the',
  'nodes on which this operation is not executed or failed, please',
  'ensure this operation is executed on all nodes in the cluster.',
  '****************************************************************'
]

/** The question after the banner; the answer is typed on the same line. */
export const CONFIRM_PROMPT = 'Do you want to continue(y/n)?'

/** What CMU says to an answer other than y or n (followed by a blank line and the question again). */
export const CONFIRM_INVALID = "Invalid option, please type 'y' or 'n'"

/** hsmlab's answer to a letter other than those offered (like CONFIRM_INVALID): `Invalid option, please type 'R', 'I' or 'A'`. */
export function invalidChoice (letters: readonly string[]): string {
  const quoted = letters.map(l => `'${l}'`)
  return `Invalid option, please type ${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1) ?? ''}`
}

/** After a failed createUser or changePswd on one server. */
export const RETRY_IGNORE_ABORT_PROMPT = 'Retry/Ignore/Abort?(R/I/A):'

/** After a failed deleteUser on one server. */
export const RETRY_ROLLBACK_IGNORE_PROMPT = 'Retry/rollBack/Ignore?(R/B/I):'

/**
 * How a command that failed on one server says so: `<cmd> failed: <reason>` then
 * `<cmd> failed on server N(name)`, as in `loginHSM failed: HSM Error: RET_USER_LOGIN_FAILURE`.
 */
export function failureLines (command: string, label: string, reason: string): string[] {
  return [`${command} failed: ${reason}`, `${command} failed on ${label}`]
}

/** `<cmd> success on server N(name)`, the per-server result line of most commands. */
export function successLine (command: string, label: string): string {
  return `${command} success on ${label}`
}

// ---- listUsers (A.7) ----

/** The fixed header of the wide listUsers table (116 characters). */
export const LIST_USERS_HEADER = '    User Id             User Type       User Name                          MofnPubKey    LoginFailureCnt         2FA'

/** One row of the wide table: id right-aligned in 10, 14 spaces, type in 16, name in 32, then 11, 16, 17 right-aligned. */
export function listUsersRow (user: UserInfo): string {
  return String(user.userId).padStart(10) +
    ' '.repeat(14) +
    user.userType.padEnd(16) +
    user.userName.padEnd(32) +
    (user.mofnPubKey ? 'YES' : 'NO').padStart(11) +
    String(user.loginFailureCount).padStart(16) +
    (user.twoFactor ? 'YES' : 'NO').padStart(17)
}

/** One server's section of listUsers. */
export function listUsersSection (label: string, users: readonly UserInfo[]): string[] {
  return [`Users on ${label}:`, `Number of users found:${users.length}`, '', LIST_USERS_HEADER, ...users.map(listUsersRow)]
}

// ---- findAllKeys (A.10) ----

/**
 * `8(o),9(s)`: keys the user owns marked (o), its public keys too (the HSM lists a public key for
 * its owner only, and the guide's findAllKeys examples mark it (o)); shared keys (s).
 */
export function keyList (keys: readonly KeyListing[]): string {
  return keys.map(k => `${k.handle}${k.relation === 'shared' ? '(s)' : '(o)'}`).join(',')
}

/** One server's section of findAllKeys, ending with its success line. */
export function findAllKeysSection (label: string, keys: readonly KeyListing[], hash: string | undefined): string[] {
  const lines = [`Keys on ${label}:`, `Number of keys found ${keys.length}`, `number of keys matched from start index 0::${keys.length}`, keyList(keys)]
  if (hash !== undefined) lines.push('Key Hash:', hash, '')
  lines.push(successLine('findAllKeys', label))
  return lines
}

// ---- getKeyInfo (A.10) ----

/** One server's section of getKeyInfo: 8-space, 17-space and 9-space indents as in the AWS examples. */
export function keyInfoSection (label: string, info: KeyInfo): string[] {
  const lines = [`Key Info on ${label}:`, '', `        ${info.token ? 'Token/Flash Key,' : 'Session Key,'}`, '', `        Owned by user ${info.owner}`, '']
  if (info.sharedWith.length > 0) {
    lines.push(`        also, shared to following ${info.sharedWith.length} user(s):`, '')
    for (const user of info.sharedWith) lines.push(`                 ${user}`)
  }
  if (info.mValue > 0) lines.push(`         ${info.mValue} Users need to approve to use/manage this key`)
  return lines
}

// ---- getAttribute, listAttributes (A.10, C.1) ----

/** An attribute value as CMU prints it: integers as `0x%08x`, strings as they are, bytes as `0x` and hex. */
export function attributeValueText (value: AttributeValue): string {
  if (typeof value === 'number') return `0x${(value >>> 0).toString(16).padStart(8, '0')}`
  if (typeof value === 'string') return value
  return `0x${Buffer.from(value).toString('hex')}`
}

/** One server's section of getAttribute: a blank line, the heading, then name and value of each attribute. */
export function attributeSection (label: string, attributes: readonly KeyAttribute[]): string[] {
  const lines = ['', `Attribute Value on ${label}:`]
  for (const a of attributes) lines.push(attributeName(a.id) ?? a.name, attributeValueText(a.value))
  return lines
}

/** listAttributes: a blank line, the heading, a blank line, then `      <name padded to 32>= <id>` in CMU's order. */
export function listAttributesLines (): string[] {
  return ['', 'Following are the possible attribute values for getAttribute:', '',
    ...CMU_ATTRIBUTE_ORDER.map(id => `      ${(attributeName(id) ?? String(id)).padEnd(32)}= ${id}`)]
}

// ---- info server (A.8) ----

/** The fixed header of `info server`. */
export const INFO_SERVER_HEADER = 'Id      Name                    Hostname         Port   State           Partition               LoginState'

/** A row of `info server`. */
export interface InfoServerRow {
  id: number
  name: string
  hostname: string
  port: number
  state: string
  partition: string
  loginState: string
}

function column (text: string, width: number): string {
  return text.length >= width ? `${text} ` : text.padEnd(width)
}

/** `0       10.0.0.1                10.0.0.1        2225    Connected       hsm-…           Logged in as 'testuser(CU)'` */
export function infoServerRow (row: InfoServerRow): string {
  return column(String(row.id), 8) + column(row.name, 24) + column(row.hostname, 16) + column(String(row.port), 8) +
    column(row.state, 16) + column(row.partition, 24) + row.loginState
}

/** `Logged in as 'admin(CO)'`, or hsmlab's text for nobody (docs/cmu.md). */
export function loginStateText (user: { userName: string, userType: string } | undefined): string {
  return user === undefined ? 'Not logged in' : `Logged in as '${user.userName}(${user.userType})'`
}

// ---- getHSMInfo (A.9) ----

/** FIPS state texts, numbered as the AWS example numbers them (2 = FIPS mode, single factor). */
const FIPS_STATES: Readonly<Record<number, string>> = {
  0: 'zeroized',
  1: 'non-FIPS mode with single factor authentication',
  2: 'FIPS mode with single factor authentication',
  3: 'FIPS mode with two factor authentication'
}

function hsmInfoField (name: string, value: string | number): string {
  return `        ${name.padEnd(21)}:${value}`
}

/** `Getting HSM Info on <n> nodes` */
export function gettingHsmInfoLine (nodes: number): string {
  return `Getting HSM Info on ${nodes} nodes`
}

/** One server's getHSMInfo block, in the AWS example's layout (fields hsmlab has no value for are the example's). */
export function hsmInfoBlock (serverId: number, info: HsmInfo): string[] {
  const [major = '0', minor = '0', build = '0'] = info.firmwareVersion.split('.')
  return [
    `                *** Server ${serverId} HSM Info ***`,
    '',
    hsmInfoField('Label', info.label),
    hsmInfoField('Model', info.model),
    '',
    hsmInfoField('Serial Number', info.serialNumber),
    hsmInfoField('HSM Flags', 0),
    hsmInfoField('FIPS state', `${info.fipsState} [${FIPS_STATES[info.fipsState] ?? 'unknown'}]`),
    '',
    hsmInfoField('Manufacturer ID', ''),
    hsmInfoField('Device ID', 10),
    hsmInfoField('Class Code', 100000),
    hsmInfoField('System vendor ID', '177D'),
    hsmInfoField('SubSystem ID', 10),
    '',
    '',
    hsmInfoField('TotalPublicMemory', info.totalTokenObjects),
    hsmInfoField('FreePublicMemory', info.freeTokenObjects),
    hsmInfoField('TotalPrivateMemory', 0),
    hsmInfoField('FreePrivateMemory', 0),
    '',
    hsmInfoField('Hardware Major', 3),
    hsmInfoField('Hardware Minor', 0),
    '',
    hsmInfoField('Firmware Major', major),
    hsmInfoField('Firmware Minor', minor.padStart(2, '0')),
    '',
    hsmInfoField('Temperature', '56 C'),
    '',
    hsmInfoField('Build Number', build),
    '',
    hsmInfoField('Firmware ID', info.hsmId),
    ''
  ]
}

// ---- server mode, sync, quit (A.4, A.10) ----

/** What `server N` prints. */
export const SERVER_MODE_LINE = "Server is in 'E2' mode..."

/** The prompt in global mode: no trailing space, as the AWS examples show `aws-cloudhsm>listUsers`. */
export const GLOBAL_PROMPT = 'aws-cloudhsm>'

/** The prompt in server mode (`server 0>`, as syncUser.md shows it; docs/cmu.md). */
export function serverPrompt (id: number): string {
  return `server ${id}>`
}

/** `ExtractMaskedObject: 0x0 !` — a syncUser step and its return code. */
export function syncStepLine (step: 'ExtractMaskedObject' | 'InsertMaskedObject', returnCode: number): string {
  return `${step}: 0x${returnCode.toString(16)} !`
}

/** What quit prints after its blank line. */
export const DISCONNECTING_LINE = 'disconnecting from servers, please wait...'

// ---- quorum (quorum-authentication-crypto-officers*.md) ----

const QUORUM_SERVICE_NAMES: Readonly<Record<number, string>> = { 3: 'USER_MGMT', 4: 'MISC_CO' }

/** The `Token:` block of getToken and listTokens. */
export function tokenLines (token: QuorumTokenInfo): string[] {
  return ['Token:', `Id:${token.id}`, `Service:${token.service}`, `Node:${token.node}`, `Key Handle:${token.keyHandle}`, `User:${token.userName}`]
}

/** One server's section of listTokens: a blank line, the banner, each token, the count. */
export function listTokensSection (serverId: number, name: string, tokens: readonly QuorumTokenInfo[]): string[] {
  const lines = ['', '=====================', `    Server ${serverId}(${name})`, '=====================']
  tokens.forEach((token, i) => {
    lines.push(`-------- Token - ${i} ----------`, ...tokenLines(token), `Token Validity: ${token.validitySec} sec`,
      `Required num of approvers : ${token.required}`, `Current num of approvals : ${token.approvers.length}`,
      ...token.approvers.map((name, j) => `Approver-${j}: ${name}`))
  })
  lines.push(`Num of tokens = ${tokens.length}`)
  return lines
}

/** `MValue of service 3[USER_MGMT] on server 0 : [2]` */
export function getMValueLine (service: number, serverId: number, mValue: number): string {
  return `MValue of service ${service}[${QUORUM_SERVICE_NAMES[service] ?? 'UNKNOWN'}] on server ${serverId} : [${mValue}]`
}

/** `Setting M Value(2) for 3 on 2 nodes` */
export function settingMValueLine (mValue: number, service: number, nodes: number): string {
  return `Setting M Value(${mValue}) for ${service} on ${nodes} nodes`
}
