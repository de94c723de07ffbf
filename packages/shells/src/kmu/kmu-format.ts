/**
 * How key_mgmt_util prints things: result lines, the cluster status block, findKey's list,
 * listUsers' table, attribute files, Error2String. Pure functions from values to text, so that
 * the exact bytes can be unit-tested against the AWS documentation (docs/kmu.md lists the choices).
 *
 * The layout follows the real tool's: every block starts with a blank line and is indented with
 * one tab (`\n\tCfm3GenerateSymmetricKey returned: 0x00 : HSM Return: SUCCESS\n`).
 */
import { Attribute, KeyType, attributeName, describeReturnCode, formatNodeState, formatReturnCode } from '@hsmlab/protocol'
import type { AttributeValue, KeyAttribute, KeyInfo, UserInfo } from '@hsmlab/protocol'

/** One node's line in the cluster status block: its server id and the code it answered. */
export interface NodeStatus {
  nodeId: number
  code: number
}

/**
 * `\n\tCfm3<Op> returned: 0x<code> : <message>\n`, the line every HSM command prints; with
 * `detail` (a read-only refusal's, naming the primary) that follows on its own line.
 */
export function resultLine (op: string, code: number, detail?: string): string {
  return `\n\t${op} returned: ${formatReturnCode(code)} : ${describeReturnCode(code).message}\n${detail === undefined ? '' : `\t${detail}\n`}`
}

/**
 * The cluster status block of the last revision of the AWS pages for client SDK 3:
 * `\n\tCluster Error Status\n` then `\tNode id <n> and err state 0x<8 hex> : <message>\n` per
 * node the command went to, in the order given (the order they answered).
 */
export function clusterStatus (nodes: readonly NodeStatus[]): string {
  let text = '\n\tCluster Error Status\n'
  for (const node of nodes) {
    text += `\tNode id ${node.nodeId} and err state ${formatNodeState(node.code)} : ${describeReturnCode(node.code).message}\n`
  }
  return text
}

/** findKey's list: the count, the index range and the comma-separated handles (none when empty). */
export function findKeyList (handles: readonly number[]): string {
  let text = `\nTotal number of keys present ${handles.length}\n`
  if (handles.length > 0) {
    text += `\n number of keys matched from start index 0::${handles.length - 1}\n${handles.join(', ')}\n`
  }
  return text
}

/** getKeyInfo's body after its result line: owner, shared users on one line (`4, 5`), quorum. */
export function keyInfoText (info: KeyInfo): string {
  let text = `\n\tOwned by user ${info.owner}\n`
  if (info.sharedWith.length > 0) {
    text += `\n\talso, shared to following ${info.sharedWith.length} user(s):\n\n\t\t ${info.sharedWith.join(', ')}\n`
  }
  if (info.mValue > 0) text += `\t ${info.mValue} Users need to approve to use/manage this key\n`
  return text
}

/** `Error Code db maps to HSM Error: Invalid User Type.` (Error2String; the code in bare lowercase hex). */
export function errorToString (code: number): string {
  return `\n\tError Code ${code.toString(16)} maps to ${describeReturnCode(code).message}\n`
}

/** The header of KMU's listUsers table, as the AWS page prints it. */
export const LIST_USERS_HEADER =
  '        Index       User ID     User Type       User Name           MofnPubKey    LoginFailureCnt         2FA'

/** Builds a line column by column: left-aligned fields start at a column, right-aligned ones end there. */
class ColumnLine {
  private text = ''

  left (column: number, value: string): this {
    this.text = this.pad(column) + value
    return this
  }

  right (endColumn: number, value: string): this {
    this.text = this.pad(endColumn - value.length) + value
    return this
  }

  toString (): string {
    return this.text
  }

  private pad (column: number): string {
    // A value wider than its column pushes the rest right, keeping one space between fields.
    if (this.text.length === 0) return ' '.repeat(Math.max(column, 0))
    return this.text.length < column ? this.text.padEnd(column) : `${this.text} `
  }
}

/** One row of the listUsers table, in the columns of `LIST_USERS_HEADER`. */
export function listUsersRow (index: number, user: UserInfo): string {
  return new ColumnLine()
    .left(8, String(index))
    .right(26, String(user.userId))
    .left(32, user.userType)
    .left(48, user.userName)
    .left(74, user.mofnPubKey ? 'YES' : 'NO')
    .right(92, String(user.loginFailureCount))
    .right(109, user.twoFactor ? 'YES' : 'NO')
    .toString()
}

/** KMU's listUsers output before its result line. */
export function listUsersText (users: readonly UserInfo[]): string {
  let text = `\n\tNumber Of Users found ${users.length}\n\n${LIST_USERS_HEADER}\n`
  users.forEach((user, i) => { text += `${listUsersRow(i + 1, user)}\n` })
  return text
}

/**
 * Users of several HSMs as one list (KMU shows "all HSMs in the cluster, even if they are not
 * consistent"): identical users appear once, differing ones once per variant, by user id.
 */
export function mergeUsers (perHsm: ReadonlyArray<readonly UserInfo[]>): UserInfo[] {
  const merged = new Map<string, UserInfo>()
  for (const users of perHsm) {
    for (const user of users) {
      const key = [user.userId, user.userType, user.userName.toLowerCase(), user.mofnPubKey, user.twoFactor].join('\0')
      const seen = merged.get(key)
      if (seen === undefined) merged.set(key, { ...user })
      else seen.loginFailureCount = Math.max(seen.loginFailureCount, user.loginFailureCount)
    }
  }
  return [...merged.values()].sort((a, b) => a.userId - b.userId || a.userName.localeCompare(b.userName))
}

/**
 * The attributes KMU's listAttributes prints, in the order of the AWS listAttributes page (which
 * leaves out OBJ_ATTR_ID and OBJ_ATTR_SENSITIVE; getAttribute still takes them).
 */
export const KMU_ATTRIBUTES: readonly number[] = [
  Attribute.CLASS, Attribute.TOKEN, Attribute.PRIVATE, Attribute.LABEL, Attribute.KEY_TYPE,
  Attribute.ENCRYPT, Attribute.DECRYPT, Attribute.WRAP, Attribute.UNWRAP, Attribute.SIGN,
  Attribute.VERIFY, Attribute.LOCAL, Attribute.MODULUS, Attribute.MODULUS_BITS, Attribute.PUBLIC_EXPONENT,
  Attribute.VALUE_LEN, Attribute.EXTRACTABLE, Attribute.KCV
]

/**
 * The order of an all-attributes (`-a 512`) dump, as in the AWS genRSAKeyPair page's dump of an
 * RSA public key (26 attributes); a key without some of them (no modulus) skips those.
 */
export const ATTRIBUTE_DUMP_ORDER: readonly number[] = [
  Attribute.CLASS, Attribute.KEY_TYPE, Attribute.TOKEN, Attribute.PRIVATE, Attribute.ENCRYPT, Attribute.DECRYPT,
  Attribute.WRAP, Attribute.UNWRAP, Attribute.SIGN, Attribute.VERIFY, Attribute.LOCAL, Attribute.SENSITIVE,
  Attribute.EXTRACTABLE, Attribute.LABEL, Attribute.ID, Attribute.VALUE_LEN, Attribute.KCV, Attribute.MODULUS,
  Attribute.MODULUS_BITS, Attribute.PUBLIC_EXPONENT, Attribute.TRUSTED, Attribute.WRAP_WITH_TRUSTED,
  Attribute.DESTROYABLE, Attribute.DERIVE, Attribute.ALWAYS_SENSITIVE, Attribute.NEVER_EXTRACTABLE
]

/** KMU's listAttributes output, as the AWS listAttributes page prints it. */
export function listAttributesText (): string {
  let text = '\nFollowing are the possible attribute values for getAttributes:\n\n'
  for (const id of KMU_ATTRIBUTES) text += `      ${(attributeName(id) ?? String(id)).padEnd(32)}= ${id}\n`
  return text
}

/** Attributes whose value is one byte in an all-attributes dump (`0x01`). */
const ONE_BYTE_ATTRIBUTES = new Set<number>([
  Attribute.CLASS, Attribute.KEY_TYPE, Attribute.TOKEN, Attribute.PRIVATE, Attribute.ENCRYPT, Attribute.DECRYPT,
  Attribute.WRAP, Attribute.UNWRAP, Attribute.SIGN, Attribute.VERIFY, Attribute.LOCAL, Attribute.SENSITIVE,
  Attribute.EXTRACTABLE, Attribute.DERIVE, Attribute.TRUSTED, Attribute.NEVER_EXTRACTABLE, Attribute.ALWAYS_SENSITIVE,
  Attribute.DESTROYABLE, Attribute.WRAP_WITH_TRUSTED
])

const STRING_ATTRIBUTES = new Set<number>([Attribute.LABEL, Attribute.ID])

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

/** The fewest big-endian bytes that hold `value` (the public exponent prints as `0x010005`). */
function minimalHex (value: number): string {
  let digits = value.toString(16)
  if (digits.length % 2 === 1) digits = `0${digits}`
  return digits
}

/** A modulus as the attribute file shows it: `0x` and lowercase hex, 80 characters a line. */
function wrappedHex (bytes: Uint8Array): string {
  return `0x${hex(bytes)}`.match(/.{1,80}/g)?.join('\n') ?? ''
}

/**
 * One attribute value as an attribute file shows it. In an all-attributes dump flags, class and
 * type are one byte (`0x04`) and lengths four (`0x00000018`); a single attribute asked for alone
 * prints every integer with four bytes (`OBJ_ATTR_KEY_TYPE` → `0x00000015`).
 */
export function formatAttributeValue (id: number, value: AttributeValue, all: boolean): string {
  if (typeof value === 'string') {
    if (STRING_ATTRIBUTES.has(id) || !/^(0x)?[0-9a-f]+$/i.test(value)) return value
    return value.startsWith('0x') ? value.toLowerCase() : `0x${value.toLowerCase()}`
  }
  if (value instanceof Uint8Array) {
    if (STRING_ATTRIBUTES.has(id)) return Buffer.from(value).toString('utf8')
    if (id === Attribute.MODULUS) return wrappedHex(value)
    return `0x${hex(value)}`
  }
  if (id === Attribute.PUBLIC_EXPONENT || id === Attribute.KCV) return `0x${minimalHex(value)}`
  if (all && ONE_BYTE_ATTRIBUTES.has(id)) return `0x${(value & 0xff).toString(16).padStart(2, '0')}`
  return formatNodeState(value >>> 0)
}

/** The bytes an attribute takes in the real tool's buffer, for `got all attributes of size <n>`. */
function attributeSize (attribute: KeyAttribute): number {
  const { value } = attribute
  if (typeof value === 'string') return 8 + Buffer.byteLength(value)
  if (value instanceof Uint8Array) return 8 + value.length
  return 8 + (ONE_BYTE_ATTRIBUTES.has(attribute.id) ? 1 : 4)
}

/** What an attribute file holds and what getAttribute prints about it. */
export interface AttributeDump {
  /** The file's text: `OBJ_ATTR_<NAME>` and the value on the next line, per attribute. */
  file: string
  /** For `-a 512`: `Attribute size: <n>, count: <k>`. */
  summary?: string
}

/** The attribute file of getAttribute. With `all` (`-a 512`) every attribute, in the AWS dump order. */
export function attributeDump (attributes: readonly KeyAttribute[], all: boolean): AttributeDump {
  const chosen = all
    ? ATTRIBUTE_DUMP_ORDER.flatMap(id => attributes.filter(a => a.id === id))
    : [...attributes]
  // An EC key's OBJ_ATTR_MODULUS is its public point, which the genECCKeyPair page's dump prints
  // as bare hex on one line (an RSA modulus has `0x` and lines of 80).
  const ec = attributes.some(a => a.id === Attribute.KEY_TYPE && a.value === KeyType.EC)
  let file = ''
  for (const attribute of chosen) {
    const name = attributeName(attribute.id) ?? attribute.name
    const value = ec && attribute.id === Attribute.MODULUS && attribute.value instanceof Uint8Array
      ? hex(attribute.value)
      : formatAttributeValue(attribute.id, attribute.value, all)
    file += `${name}\n${value}\n`
  }
  if (!all) return { file }
  const size = chosen.reduce((sum, a) => sum + attributeSize(a), 0)
  return { file, summary: `Attribute size: ${size}, count: ${chosen.length}` }
}
