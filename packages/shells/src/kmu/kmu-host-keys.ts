/**
 * What key_mgmt_util does on the host for the import and export commands: AES key wrap with a
 * key file's AES key (`-wk` of exSymKey, imSymKey and importPrivateKey), and reading PEM keys
 * (importPrivateKey, importPubKey). Everything else of those commands happens in the HSM.
 */
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey } from 'node:crypto'
import { KeyType } from '@hsmlab/protocol'

/** RFC 3394's default IV, and RFC 5649's for data that is not a multiple of 8 bytes (as the HSM's wrapKey -m 4). */
const RFC3394_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex')
const RFC5649_IV = Buffer.from('a65959a6', 'hex')
const AES_KEY_BYTES: readonly number[] = [16, 24, 32]

/** True when `key` can be an AES key (16, 24 or 32 bytes). */
export function isAesKey (key: Uint8Array): boolean {
  return AES_KEY_BYTES.includes(key.length)
}

function cipherName (kek: Uint8Array, padded: boolean): string {
  return `id-aes${kek.length * 8}-wrap${padded ? '-pad' : ''}`
}

/** Wraps `data` with `kek` as the HSM's wrapKey -m 4 does, so that unWrapKey -m 4 takes it. */
export function hostKeyWrap (kek: Uint8Array, data: Uint8Array): Uint8Array {
  const padded = data.length < 16 || data.length % 8 !== 0
  const cipher = createCipheriv(cipherName(kek, padded), kek, padded ? RFC5649_IV : RFC3394_IV)
  return new Uint8Array(Buffer.concat([cipher.update(data), cipher.final()]))
}

/** Unwraps what the HSM's wrapKey -m 4 made; undefined when `kek` is not the key that wrapped it. */
export function hostKeyUnwrap (kek: Uint8Array, wrapped: Uint8Array): Uint8Array | undefined {
  for (const padded of [false, true]) {
    try {
      const decipher = createDecipheriv(cipherName(kek, padded), kek, padded ? RFC5649_IV : RFC3394_IV)
      return new Uint8Array(Buffer.concat([decipher.update(wrapped), decipher.final()]))
    } catch {
      // The other form, or the wrong key: tried next, or undefined.
    }
  }
  return undefined
}

/** The HSM key type of a node KeyObject type (RSA 0, EC 3), or undefined for other types. */
function keyTypeOf (type: string | undefined): number | undefined {
  if (type === 'rsa') return KeyType.RSA
  if (type === 'ec') return KeyType.EC
  return undefined
}

/** A private key file (PEM: PKCS#8, or PKCS#1 / SEC 1 as openssl writes them) as PKCS#8 DER; undefined if it is none. */
export function privateKeyDer (file: Uint8Array): { der: Uint8Array, keyType: number } | undefined {
  try {
    const key = createPrivateKey({ key: Buffer.from(file), format: 'pem' })
    const keyType = keyTypeOf(key.asymmetricKeyType)
    if (keyType === undefined) return undefined
    return { der: new Uint8Array(key.export({ format: 'der', type: 'pkcs8' })), keyType }
  } catch {
    return undefined
  }
}

/** A public key file (PEM SPKI, as exportPubKey and `openssl pkey -pubout` write it) as SPKI DER; undefined if it is none. */
export function publicKeyDer (file: Uint8Array): Uint8Array | undefined {
  try {
    const text = Buffer.from(file).toString('utf8')
    // A private key file would give its public half: refused, it is not what importPubKey reads.
    if (!text.includes('-----BEGIN PUBLIC KEY-----')) return undefined
    const key = createPublicKey({ key: text, format: 'pem' })
    if (keyTypeOf(key.asymmetricKeyType) === undefined) return undefined
    return new Uint8Array(key.export({ format: 'der', type: 'spki' }))
  } catch {
    return undefined
  }
}
