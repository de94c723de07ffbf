/**
 * The daemon's socket protocol (docs/pkcs11.md "The daemon protocol"), small enough to write in C
 * without a library: every message is a frame `u32 length | body`, big-endian, the length counting
 * the body only. A request body is `u16 op | u16 0 | fields`, a response body `u32 rv | fields`,
 * where `rv` is the PKCS#11 CK_RV the library returns (the daemon maps the HSM's return codes, in
 * return-values.ts) and each field is `u16 tag | u32 length | value`. Integers in fields are u64
 * big-endian; strings UTF-8. A field's tag may repeat (handles, attributes); order is kept.
 *
 * Attribute values (tag ATTR, PUB_ATTR) are `u64 type | value` with the value in the C library's
 * own encoding, since both ends are on one machine: CK_ULONG as 8 bytes in host byte order (the
 * library says its sizeof(CK_ULONG) in HELLO and the daemon refuses anything but 8), CK_BBOOL 1 byte.
 *
 * One request is answered before the next is read on a socket; the C library keeps a pool of
 * sockets for its threads.
 */
import { endianness } from 'node:os'
import { ClientDaemonError, CLIENT_DAEMON_ERR_FRAME } from './errors.js'

/** Operations. */
export const Op = {
  HELLO: 1,
  LOGIN: 2,
  LOGOUT: 3,
  OPEN_SESSION: 4,
  CLOSE_SESSION: 5,
  FIND: 6,
  GET_ATTRS: 7,
  SET_ATTRS: 8,
  GENERATE_KEY: 9,
  GENERATE_KEY_PAIR: 10,
  DESTROY: 11,
  ENCRYPT: 12,
  DECRYPT: 13,
  SIGN: 14,
  VERIFY: 15,
  DIGEST: 16,
  WRAP: 17,
  UNWRAP: 18,
  RANDOM: 19,
  PING: 20,
  CREATE_OBJECT: 21
} as const

/** Field tags. */
export const Tag = {
  /** HELLO: the application's 16-byte token (one per C_Initialize); sockets with the same token share its login. */
  APP: 1,
  USER: 2,
  PIN: 3,
  SESSION: 4,
  HANDLE: 5,
  MECHANISM: 6,
  DATA: 7,
  SIGNATURE: 8,
  IV: 9,
  AAD: 10,
  TAG_BITS: 11,
  HASH_MECHANISM: 12,
  SALT_BYTES: 13,
  OAEP_LABEL: 14,
  /** HELLO: sizeof(CK_ULONG) in the library. */
  ULONG_BYTES: 15,
  /** GENERATE_KEY_PAIR: the private key's handle; WRAP, UNWRAP: the wrapping key's. */
  HANDLE2: 16,
  COUNT: 17,
  ATTR: 20,
  ATTR_TYPE: 21,
  /** GET_ATTRS answers: a type the object does not have (CKR_ATTRIBUTE_TYPE_INVALID). */
  ATTR_INVALID: 22,
  /** GET_ATTRS answers: a type whose value cannot be revealed (CKR_ATTRIBUTE_SENSITIVE). */
  ATTR_SENSITIVE: 23,
  PUB_ATTR: 25,
  /** HELLO answers: token label, serial number, model, cluster id, HSMs connected. */
  TOKEN_LABEL: 30,
  SERIAL: 31,
  MODEL: 32,
  CLUSTER_ID: 33,
  HSMS: 34,
  /** Any answer: why it failed, for a person. */
  MESSAGE: 40
} as const

/** One field. */
export type Field = [tag: number, value: Buffer]

/** The fields of a message, read. */
export class Fields {
  constructor (readonly list: Field[]) {}
  get (tag: number): Buffer | undefined {
    for (const [t, v] of this.list) if (t === tag) return v
    return undefined
  }
  all (tag: number): Buffer[] {
    return this.list.filter(([t]) => t === tag).map(([, v]) => v)
  }
  u64 (tag: number): number | undefined {
    const v = this.get(tag)
    return v === undefined ? undefined : readU64(v)
  }
  string (tag: number): string | undefined {
    return this.get(tag)?.toString('utf8')
  }
}

export function readU64 (v: Buffer, offset = 0): number {
  if (v.length < offset + 8) throw new ClientDaemonError(CLIENT_DAEMON_ERR_FRAME, 'an integer field is shorter than 8 bytes')
  const n = v.readBigUInt64BE(offset)
  // CK_ULONG values above 2^53 (CK_UNAVAILABLE_INFORMATION, vendor bits) are kept approximately; none is meaningful here.
  return Number(n)
}

export function u64 (n: number | bigint): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}

/** A CK_ULONG as the C library holds it (8 bytes, host order). */
export function nativeUlong (n: number | bigint): Buffer {
  const b = Buffer.alloc(8)
  if (endianness() === 'LE') b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(n)))
  else b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(n)))
  return b
}

/** A CK_ULONG from the C library's bytes (8 bytes, host order; a shorter value is read as far as it goes). */
export function readNativeUlong (v: Buffer): number {
  if (v.length === 8) return Number(endianness() === 'LE' ? v.readBigUInt64LE() : v.readBigUInt64BE())
  if (v.length === 4) return endianness() === 'LE' ? v.readUInt32LE() : v.readUInt32BE()
  if (v.length === 1) return v[0] as number
  throw new ClientDaemonError(CLIENT_DAEMON_ERR_FRAME, `a CK_ULONG value of ${v.length} bytes`)
}

export function encodeFields (fields: Field[]): Buffer[] {
  const parts: Buffer[] = []
  for (const [tag, value] of fields) {
    const head = Buffer.alloc(6)
    head.writeUInt16BE(tag)
    head.writeUInt32BE(value.length, 2)
    parts.push(head, value)
  }
  return parts
}

export function decodeFields (body: Buffer, offset: number): Fields {
  const list: Field[] = []
  let at = offset
  while (at < body.length) {
    if (at + 6 > body.length) throw new ClientDaemonError(CLIENT_DAEMON_ERR_FRAME, 'a field header is cut short')
    const tag = body.readUInt16BE(at)
    const length = body.readUInt32BE(at + 2)
    if (at + 6 + length > body.length) throw new ClientDaemonError(CLIENT_DAEMON_ERR_FRAME, `field ${tag} claims ${length} bytes, past the end of the frame`)
    list.push([tag, body.subarray(at + 6, at + 6 + length)])
    at += 6 + length
  }
  return new Fields(list)
}

/** A request frame, as the C library writes it (for tests and the bench). */
export function encodeRequest (op: number, fields: Field[]): Buffer {
  const head = Buffer.alloc(8)
  const parts = encodeFields(fields)
  const length = 4 + parts.reduce((n, p) => n + p.length, 0)
  head.writeUInt32BE(length)
  head.writeUInt16BE(op, 4)
  return Buffer.concat([head, ...parts])
}

/** A response frame. */
export function encodeResponse (rv: number, fields: Field[]): Buffer {
  const head = Buffer.alloc(8)
  const parts = encodeFields(fields)
  head.writeUInt32BE(4 + parts.reduce((n, p) => n + p.length, 0))
  head.writeUInt32BE(rv >>> 0, 4)
  return Buffer.concat([head, ...parts])
}

/**
 * Cuts a byte stream into frame bodies. `push` returns the complete bodies received so far;
 * a length above `frameBytesMax` throws CLIENT_DAEMON_ERR_FRAME (the caller closes the socket).
 */
export class FrameReader {
  private buffered: Buffer[] = []
  private bufferedBytes = 0
  constructor (private readonly frameBytesMax: number) {}

  push (chunk: Buffer): Buffer[] {
    this.buffered.push(chunk)
    this.bufferedBytes += chunk.length
    const bodies: Buffer[] = []
    for (;;) {
      if (this.bufferedBytes < 4) break
      let all = this.buffered.length === 1 ? this.buffered[0] as Buffer : Buffer.concat(this.buffered)
      this.buffered = [all]
      const length = all.readUInt32BE(0)
      if (length > this.frameBytesMax) throw new ClientDaemonError(CLIENT_DAEMON_ERR_FRAME, `a frame of ${length} bytes is larger than frameBytesMax (${this.frameBytesMax})`)
      if (all.length < 4 + length) break
      bodies.push(all.subarray(4, 4 + length))
      all = all.subarray(4 + length)
      this.buffered = all.length === 0 ? [] : [all]
      this.bufferedBytes = all.length
    }
    return bodies
  }
}
