/**
 * PKCS#11 attributes (CKA_*) of the HSM's keys. The HSM numbers its OBJ_ATTR_* as PKCS#11 numbers
 * its CKA_* (CLASS 0, TOKEN 1, LABEL 3, KEY_TYPE 0x100, ENCRYPT 0x104 ...), and its classes and
 * key types as CKO_* and CKK_*; what differs is translated here: an EC key's OBJ_ATTR_MODULUS
 * (the point) and OBJ_ATTR_MODULUS_BITS (the curve's OpenSSL NID) become CKA_EC_POINT and
 * CKA_EC_PARAMS; the public exponent, a number on the HSM, becomes big-endian bytes; OBJ_ATTR_ID,
 * a string on the HSM, is CKA_ID's bytes read as Latin-1 (so an ASCII ID set with KMU reads the
 * same); OBJ_ATTR_KCV's first 3 bytes are CKA_CHECK_VALUE. Secret parts (CKA_VALUE of a secret or
 * private key, the private exponent and primes) are sensitive: the HSM never gives them out.
 */
import { Attribute, KeyClass, KeyType } from '@hsmlab/protocol'
import type { AttributeValue, KeyAttribute } from '@hsmlab/protocol'
import { nativeUlong, readNativeUlong } from './wire.js'

/** CKA_* numbers used here. */
export const Cka = {
  CLASS: 0x0,
  TOKEN: 0x1,
  PRIVATE: 0x2,
  LABEL: 0x3,
  VALUE: 0x11,
  CHECK_VALUE: 0x90,
  TRUSTED: 0x86,
  KEY_TYPE: 0x100,
  SUBJECT: 0x101,
  ID: 0x102,
  SENSITIVE: 0x103,
  ENCRYPT: 0x104,
  DECRYPT: 0x105,
  WRAP: 0x106,
  UNWRAP: 0x107,
  SIGN: 0x108,
  SIGN_RECOVER: 0x109,
  VERIFY: 0x10a,
  VERIFY_RECOVER: 0x10b,
  DERIVE: 0x10c,
  START_DATE: 0x110,
  END_DATE: 0x111,
  MODULUS: 0x120,
  MODULUS_BITS: 0x121,
  PUBLIC_EXPONENT: 0x122,
  PRIVATE_EXPONENT: 0x123,
  PRIME_1: 0x124,
  PRIME_2: 0x125,
  EXPONENT_1: 0x126,
  EXPONENT_2: 0x127,
  COEFFICIENT: 0x128,
  VALUE_LEN: 0x161,
  EXTRACTABLE: 0x162,
  LOCAL: 0x163,
  NEVER_EXTRACTABLE: 0x164,
  ALWAYS_SENSITIVE: 0x165,
  KEY_GEN_MECHANISM: 0x166,
  MODIFIABLE: 0x170,
  COPYABLE: 0x171,
  DESTROYABLE: 0x172,
  EC_PARAMS: 0x180,
  EC_POINT: 0x181,
  ALWAYS_AUTHENTICATE: 0x202,
  WRAP_WITH_TRUSTED: 0x210
} as const

/** CK_BBOOL attributes. */
export const BOOLEAN_ATTRIBUTES: ReadonlySet<number> = new Set([
  Cka.TOKEN, Cka.PRIVATE, Cka.TRUSTED, Cka.SENSITIVE, Cka.ENCRYPT, Cka.DECRYPT, Cka.WRAP, Cka.UNWRAP, Cka.SIGN, Cka.SIGN_RECOVER,
  Cka.VERIFY, Cka.VERIFY_RECOVER, Cka.DERIVE, Cka.EXTRACTABLE, Cka.LOCAL, Cka.NEVER_EXTRACTABLE, Cka.ALWAYS_SENSITIVE,
  Cka.MODIFIABLE, Cka.COPYABLE, Cka.DESTROYABLE, Cka.ALWAYS_AUTHENTICATE, Cka.WRAP_WITH_TRUSTED
])

/** CK_ULONG attributes. */
export const ULONG_ATTRIBUTES: ReadonlySet<number> = new Set([Cka.CLASS, Cka.KEY_TYPE, Cka.MODULUS_BITS, Cka.VALUE_LEN, Cka.KEY_GEN_MECHANISM])

/** Usage attributes a template may set at creation and C_SetAttributeValue may change. */
export const USAGE_ATTRIBUTES: readonly number[] = [
  Cka.ENCRYPT, Cka.DECRYPT, Cka.WRAP, Cka.UNWRAP, Cka.SIGN, Cka.VERIFY, Cka.DERIVE, Cka.TRUSTED, Cka.DESTROYABLE, Cka.WRAP_WITH_TRUSTED
]

/** The curves hsmlab makes keys on: the HSM's curve id (genECCKeyPair -i), OpenSSL NID, DER OID. */
export const EC_CURVES: ReadonlyArray<{ name: string, curveId: number, nid: number, oid: Buffer }> = [
  { name: 'P-256', curveId: 2, nid: 415, oid: Buffer.from('06082a8648ce3d030107', 'hex') },
  { name: 'P-384', curveId: 14, nid: 715, oid: Buffer.from('06052b81040022', 'hex') },
  { name: 'secp256k1', curveId: 16, nid: 714, oid: Buffer.from('06052b8104000a', 'hex') }
]

/** A template as the library sent it: type → value bytes (C's encoding). */
export type Template = Map<number, Buffer>

/** Reads a template's CK_BBOOL (undefined when absent). */
export function templateBool (t: Template, type: number): boolean | undefined {
  const v = t.get(type)
  return v === undefined ? undefined : v.some(b => b !== 0)
}

export function templateUlong (t: Template, type: number): number | undefined {
  const v = t.get(type)
  return v === undefined ? undefined : readNativeUlong(v)
}

export function templateString (t: Template, type: number): string | undefined {
  return t.get(type)?.toString('utf8')
}

/** CKA_ID bytes as the HSM's ID string (Latin-1, one character a byte). */
export function idString (bytes: Buffer): string {
  return bytes.toString('latin1')
}

function bool (v: AttributeValue | undefined): Buffer {
  return Buffer.from([v === 1 || v === '1' ? 1 : 0])
}

function bytesOf (v: AttributeValue | undefined): Buffer {
  if (v instanceof Uint8Array) return Buffer.from(v)
  if (typeof v === 'string') return Buffer.from(v, 'utf8')
  return Buffer.alloc(0)
}

function bigEndian (n: number): Buffer {
  let hex = n.toString(16)
  if (hex.length % 2 === 1) hex = '0' + hex
  return Buffer.from(hex, 'hex')
}

/** DER OCTET STRING around an EC point (CKA_EC_POINT). */
function octetString (point: Buffer): Buffer {
  const len = point.length
  const head = len < 128 ? Buffer.from([0x04, len]) : len < 256 ? Buffer.from([0x04, 0x81, len]) : Buffer.from([0x04, 0x82, len >> 8, len & 0xff])
  return Buffer.concat([head, point])
}

/** An object's PKCS#11 view: values it has, and types that are sensitive. */
export interface ObjectView {
  values: Map<number, Buffer>
  sensitive: Set<number>
}

/** The PKCS#11 attributes of one HSM key, from getAttribute(ALL). */
export function objectView (attributes: KeyAttribute[]): ObjectView {
  const a = new Map<number, AttributeValue>(attributes.map(x => [x.id, x.value]))
  const values = new Map<number, Buffer>()
  const sensitive = new Set<number>()
  const keyClass = Number(a.get(Attribute.CLASS))
  const keyType = Number(a.get(Attribute.KEY_TYPE))
  values.set(Cka.CLASS, nativeUlong(keyClass))
  values.set(Cka.KEY_TYPE, nativeUlong(keyType))
  values.set(Cka.TOKEN, bool(a.get(Attribute.TOKEN)))
  values.set(Cka.PRIVATE, bool(a.get(Attribute.PRIVATE)))
  values.set(Cka.LABEL, bytesOf(a.get(Attribute.LABEL)))
  const id = a.get(Attribute.ID)
  values.set(Cka.ID, typeof id === 'string' ? Buffer.from(id, 'latin1') : bytesOf(id))
  values.set(Cka.MODIFIABLE, Buffer.from([1]))
  values.set(Cka.COPYABLE, Buffer.from([0]))
  values.set(Cka.DESTROYABLE, bool(a.get(Attribute.DESTROYABLE) ?? 1))
  values.set(Cka.LOCAL, bool(a.get(Attribute.LOCAL)))
  values.set(Cka.DERIVE, bool(a.get(Attribute.DERIVE)))
  values.set(Cka.START_DATE, Buffer.alloc(0))
  values.set(Cka.END_DATE, Buffer.alloc(0))
  const local = a.get(Attribute.LOCAL) === 1
  const genMechanism = !local ? 0xffffffffffffffffn : keyType === KeyType.RSA ? 0n : keyType === KeyType.EC ? 0x1040n : keyType === KeyType.AES ? 0x1080n : 0x350n
  values.set(Cka.KEY_GEN_MECHANISM, nativeUlong(genMechanism))
  const flags = (ids: number[]): void => { for (const id of ids) values.set(id, bool(a.get(id))) }
  if (keyClass === KeyClass.SECRET) {
    flags([Cka.SENSITIVE, Cka.ENCRYPT, Cka.DECRYPT, Cka.SIGN, Cka.VERIFY, Cka.WRAP, Cka.UNWRAP, Cka.EXTRACTABLE, Cka.ALWAYS_SENSITIVE, Cka.NEVER_EXTRACTABLE, Cka.TRUSTED, Cka.WRAP_WITH_TRUSTED])
    const len = a.get(Attribute.VALUE_LEN)
    if (typeof len === 'number') values.set(Cka.VALUE_LEN, nativeUlong(len))
    const kcv = a.get(Attribute.KCV)
    if (kcv instanceof Uint8Array) values.set(Cka.CHECK_VALUE, Buffer.from(kcv.subarray(0, 3)))
    sensitive.add(Cka.VALUE)
  } else {
    values.set(Cka.SUBJECT, Buffer.alloc(0))
    if (keyClass === KeyClass.PUBLIC) {
      flags([Cka.ENCRYPT, Cka.VERIFY, Cka.WRAP, Cka.TRUSTED])
      values.set(Cka.VERIFY_RECOVER, Buffer.from([0]))
    } else {
      flags([Cka.SENSITIVE, Cka.DECRYPT, Cka.SIGN, Cka.UNWRAP, Cka.EXTRACTABLE, Cka.ALWAYS_SENSITIVE, Cka.NEVER_EXTRACTABLE, Cka.WRAP_WITH_TRUSTED])
      values.set(Cka.SIGN_RECOVER, Buffer.from([0]))
      values.set(Cka.ALWAYS_AUTHENTICATE, Buffer.from([0]))
      for (const s of [Cka.VALUE, Cka.PRIVATE_EXPONENT, Cka.PRIME_1, Cka.PRIME_2, Cka.EXPONENT_1, Cka.EXPONENT_2, Cka.COEFFICIENT]) sensitive.add(s)
    }
    if (keyType === KeyType.RSA) {
      values.set(Cka.MODULUS, bytesOf(a.get(Attribute.MODULUS)))
      const bits = a.get(Attribute.MODULUS_BITS)
      if (typeof bits === 'number') values.set(Cka.MODULUS_BITS, nativeUlong(bits))
      const e = a.get(Attribute.PUBLIC_EXPONENT)
      if (typeof e === 'number') values.set(Cka.PUBLIC_EXPONENT, bigEndian(e))
    } else if (keyType === KeyType.EC) {
      const curve = EC_CURVES.find(c => c.nid === a.get(Attribute.MODULUS_BITS))
      if (curve !== undefined) values.set(Cka.EC_PARAMS, curve.oid)
      const point = a.get(Attribute.MODULUS)
      if (point instanceof Uint8Array) values.set(Cka.EC_POINT, octetString(Buffer.from(point)))
    }
  }
  return { values, sensitive }
}

/** True when every attribute of the template equals the object's (booleans by truth, others byte for byte). */
export function matches (view: ObjectView, template: Template): boolean {
  for (const [type, wanted] of template) {
    const have = view.values.get(type)
    if (have === undefined) return false
    if (BOOLEAN_ATTRIBUTES.has(type)) {
      if (have.some(b => b !== 0) !== wanted.some(b => b !== 0)) return false
    } else if (ULONG_ATTRIBUTES.has(type)) {
      if (readNativeUlong(have) !== readNativeUlong(wanted)) return false
    } else if (!have.equals(wanted)) {
      return false
    }
  }
  return true
}

/** The usage attributes a template sets on and off. */
export function usageOf (t: Template): { on: number[], off: number[] } {
  const on: number[] = []
  const off: number[] = []
  for (const id of USAGE_ATTRIBUTES) {
    const v = templateBool(t, id)
    if (v === true) on.push(id)
    if (v === false) off.push(id)
  }
  return { on, off }
}
