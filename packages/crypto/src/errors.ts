/** Errors of the crypto package. Callers branch on `code`, never on the class. */
export class CryptoError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = 'CryptoError'
  }
}

/** A sealed box, masked object or signature failed authentication: a byte was changed. */
export const CRYPTO_ERR_AUTH = 'CRYPTO_ERR_AUTH'
/** A masked object comes from another cluster lineage than the HSM that opens it. */
export const CRYPTO_ERR_LINEAGE = 'CRYPTO_ERR_LINEAGE'
/** Bytes that are not in the expected format (wrong magic, short, unknown version). */
export const CRYPTO_ERR_FORMAT = 'CRYPTO_ERR_FORMAT'
/** A peer's certificate is not signed by the cluster's trust anchor, or names another cluster. */
export const CRYPTO_ERR_UNTRUSTED = 'CRYPTO_ERR_UNTRUSTED'
/** A channel frame arrived out of order, was replayed, or failed to decrypt. */
export const CRYPTO_ERR_CHANNEL = 'CRYPTO_ERR_CHANNEL'
