/**
 * The PKCS#11 crypto operations the client daemon uses (issue 16): p11Encrypt, p11Decrypt,
 * p11Sign, p11Verify with CKM_* mechanisms (mechanisms.ts), and generateRandom.
 *
 * Who may do what is the key handlers' rule (key-handlers.ts): a CU uses the keys it owns, the keys
 * shared with it, and every public key; a usage attribute at 0 (OBJ_ATTR_ENCRYPT, DECRYPT, SIGN,
 * VERIFY) is RET_KEY_ACCESS_DENIED; a key of the wrong class or type for the mechanism is
 * RET_INVALID_INPUT. HMAC signs and verifies with a secret key (generic secret or AES) whose
 * OBJ_ATTR_SIGN / VERIFY is 1. generateRandom needs no login, as C_GenerateRandom needs none.
 */
import { randomBytes } from 'node:crypto'
import { Attribute, KeyClass, KeyType } from '@hsmlab/protocol'
import type { MechanismCall } from '@hsmlab/protocol'
import type { Handler, HandlerTable, HsmContext, KeyRecord, Session } from '../context.js'
import { privateKeyObject, publicKeyObject } from '../key-material.js'
import { cryptKeyKind, p11DecryptData, p11EncryptData, p11SignData, p11VerifyData, signKeyKind } from '../mechanisms.js'
import { ReturnCode, WireError } from '@hsmlab/protocol'
import { requireUser } from '../permissions.js'
import { keyForUse, requireFlag, requireKind } from './key-handlers.js'

function usableKey (ctx: HsmContext, session: Session, handle: number): KeyRecord {
  const user = requireUser(session, 'CU')
  return keyForUse(ctx, session, user, handle).record
}

/** The key of a signing mechanism, checked: secret (HMAC), or the pair half `keyClass` of the scheme's type. */
function signingKey (record: KeyRecord, mechanism: number, keyClass: number, attribute: number, what: string): ReturnType<typeof privateKeyObject> | Uint8Array {
  const kind = signKeyKind(mechanism)
  if (kind === 'secret') {
    if (record.keyClass !== KeyClass.SECRET || (record.keyType !== KeyType.GENERIC_SECRET && record.keyType !== KeyType.AES)) {
      requireKind(record, KeyClass.SECRET, KeyType.GENERIC_SECRET, `${what} with HMAC (a generic secret or AES key is needed)`)
    }
    requireFlag(record, attribute, what)
    return record.material
  }
  requireKind(record, keyClass, kind === 'ec' ? KeyType.EC : KeyType.RSA, `${what} with mechanism 0x${mechanism.toString(16)}`)
  requireFlag(record, attribute, what)
  return keyClass === KeyClass.PRIVATE ? privateKeyObject(record.material) : publicKeyObject(record.material)
}

function cryptKey (record: KeyRecord, call: MechanismCall, encrypt: boolean): ReturnType<typeof privateKeyObject> | Uint8Array {
  const what = encrypt ? 'encrypt' : 'decrypt'
  if (cryptKeyKind(call.mechanism) === 'aes') {
    requireKind(record, KeyClass.SECRET, KeyType.AES, `${what} with mechanism 0x${call.mechanism.toString(16)} (an AES key is needed)`)
    requireFlag(record, encrypt ? Attribute.ENCRYPT : Attribute.DECRYPT, what)
    return record.material
  }
  requireKind(record, encrypt ? KeyClass.PUBLIC : KeyClass.PRIVATE, KeyType.RSA, `${what} with RSA-OAEP`)
  requireFlag(record, encrypt ? Attribute.ENCRYPT : Attribute.DECRYPT, what)
  return encrypt ? publicKeyObject(record.material) : privateKeyObject(record.material)
}

const p11Encrypt: Handler<'p11Encrypt'> = async (ctx, session, call) => {
  const record = usableKey(ctx, session, call.handle)
  return { data: p11EncryptData(call.mechanism, call, cryptKey(record, call, true), call.data) }
}

const p11Decrypt: Handler<'p11Decrypt'> = async (ctx, session, call) => {
  const record = usableKey(ctx, session, call.handle)
  return { data: p11DecryptData(call.mechanism, call, cryptKey(record, call, false), call.data) }
}

const p11Sign: Handler<'p11Sign'> = async (ctx, session, call) => {
  const record = usableKey(ctx, session, call.handle)
  const key = signingKey(record, call.mechanism, KeyClass.PRIVATE, Attribute.SIGN, 'sign')
  return { signature: p11SignData(call.mechanism, call, key, call.data) }
}

const p11Verify: Handler<'p11Verify'> = async (ctx, session, call) => {
  const record = usableKey(ctx, session, call.handle)
  const key = signingKey(record, call.mechanism, KeyClass.PUBLIC, Attribute.VERIFY, 'verify')
  if (!p11VerifyData(call.mechanism, call, key, call.data, call.signature)) {
    throw new WireError(ReturnCode.BAD_PKCS_DATA, 'the signature does not match the data and key')
  }
  return {}
}

const generateRandom: Handler<'generateRandom'> = async (_ctx, _session, { bytes }) => {
  return { data: new Uint8Array(randomBytes(bytes)) }
}

/** The PKCS#11 crypto handlers. */
export const cryptoHandlers: HandlerTable = { p11Encrypt, p11Decrypt, p11Sign, p11Verify, generateRandom }
