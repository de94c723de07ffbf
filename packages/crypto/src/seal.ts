import { nacl } from './nacl.js'
import { concatBytes } from './bytes.js'
import { CryptoError, CRYPTO_ERR_AUTH, CRYPTO_ERR_FORMAT } from './errors.js'

/** Bytes of a secret key for `seal` / `open` (XSalsa20-Poly1305). */
export const SECRET_KEY_BYTES = nacl.secretbox.keyLength
const NONCE_BYTES = nacl.secretbox.nonceLength

/** A fresh random secret key. */
export function generateSecretKey (): Uint8Array {
  return nacl.randomBytes(SECRET_KEY_BYTES)
}

/** Authenticated encryption of `plaintext` under `key`: random nonce followed by the box. */
export function seal (key: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const nonce = nacl.randomBytes(NONCE_BYTES)
  return concatBytes(nonce, nacl.secretbox(plaintext, nonce, key))
}

/** Opens what `seal` made; throws `CRYPTO_ERR_AUTH` if a single byte differs. */
export function open (key: Uint8Array, sealed: Uint8Array): Uint8Array {
  if (sealed.length < NONCE_BYTES + nacl.secretbox.overheadLength) {
    throw new CryptoError(CRYPTO_ERR_FORMAT, `sealed data is ${sealed.length} bytes, shorter than any sealed box`)
  }
  const plain = nacl.secretbox.open(sealed.subarray(NONCE_BYTES), sealed.subarray(0, NONCE_BYTES), key)
  if (plain === null) throw new CryptoError(CRYPTO_ERR_AUTH, 'sealed data failed authentication: it was changed or sealed under another key')
  return plain
}
