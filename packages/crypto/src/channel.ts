import type { KeyObject } from 'node:crypto'
import { nacl } from './nacl.js'
import { concatBytes, deriveKey, sha512, utf8 } from './bytes.js'
import { CryptoError, CRYPTO_ERR_CHANNEL, CRYPTO_ERR_UNTRUSTED } from './errors.js'
import { sign, verifyCertificate, verifySignature } from './identity.js'
import { FrameCipher } from './frame-cipher.js'
import { generateX25519, x25519BoxKey } from './key-objects.js'
import type { HsmCertificate } from './identity.js'

/**
 * The encrypted channel between a client (or a peer HSM) and an HSM.
 *
 * The client sends an ephemeral X25519 key and a nonce; the HSM answers with its own ephemeral
 * key, its certificate, and a signature over both with its identity key. The client checks the
 * certificate against the cluster's trust anchor, so it knows it talks to a genuine HSM, and
 * both derive one key per direction. Frames carry a counter as nonce, so a replayed, dropped or
 * reordered frame fails. A peer HSM then proves its own identity over the same transcript.
 */

/** First message, client to HSM. */
export interface ClientHello {
  ephemeralPublicKey: Uint8Array
  nonce: Uint8Array
}

/** The HSM's answer. */
export interface ServerWelcome {
  ephemeralPublicKey: Uint8Array
  certificate: HsmCertificate
  signature: Uint8Array
}

/** A peer's proof that it holds the identity key of `certificate`, bound to one channel. */
export interface IdentityProof {
  certificate: HsmCertificate
  signature: Uint8Array
}

function transcript (hello: ClientHello, serverEphemeral: Uint8Array): Uint8Array {
  return concatBytes(utf8('hsmlab/channel/v1\0'), hello.ephemeralPublicKey, hello.nonce, serverEphemeral)
}

/** One direction-keyed, counter-nonced encrypted channel. */
export class SecureChannel {
  /** The handshake transcript; identity proofs sign it so that they cannot be replayed elsewhere. */
  readonly transcript: Uint8Array
  /** The certificate of the HSM at the other end (set on the client side). */
  readonly peerCertificate: HsmCertificate | undefined
  private readonly sending: FrameCipher
  private readonly receiving: FrameCipher

  constructor (shared: Uint8Array, transcriptBytes: Uint8Array, role: 'client' | 'server', peerCertificate?: HsmCertificate) {
    const material = concatBytes(shared, sha512(transcriptBytes))
    const toServer = deriveKey(material, 'channel/client-to-server')
    const toClient = deriveKey(material, 'channel/server-to-client')
    this.sending = new FrameCipher(role === 'client' ? toServer : toClient)
    this.receiving = new FrameCipher(role === 'client' ? toClient : toServer)
    this.transcript = transcriptBytes
    this.peerCertificate = peerCertificate
  }

  /** Encrypts one frame (AES-256-GCM; the nonce is 4 zero bytes and the frame's number, big-endian; frame-cipher.ts). */
  encrypt (plaintext: Uint8Array): Uint8Array {
    return this.sending.seal(plaintext)
  }

  /** Decrypts the next frame; throws `CRYPTO_ERR_CHANNEL` if it was changed, replayed or reordered. */
  decrypt (frame: Uint8Array): Uint8Array {
    const plain = this.receiving.open(frame)
    if (plain === null) throw new CryptoError(CRYPTO_ERR_CHANNEL, 'an encrypted frame failed authentication (changed, replayed or out of order)')
    return plain
  }

  /** Signs this channel's transcript with an identity key: how a peer HSM proves who it is. */
  proveIdentity (identitySecretKey: Uint8Array, certificate: HsmCertificate): IdentityProof {
    return { certificate, signature: sign(identitySecretKey, concatBytes(utf8('peer\0'), this.transcript)) }
  }

  /** Checks a peer's identity proof for this channel against a trust anchor; returns its certificate. */
  verifyIdentity (anchorPublicKey: Uint8Array, proof: IdentityProof): HsmCertificate {
    verifyCertificate(anchorPublicKey, proof.certificate)
    if (!verifySignature(proof.certificate.publicKey, concatBytes(utf8('peer\0'), this.transcript), proof.signature)) {
      throw new CryptoError(CRYPTO_ERR_UNTRUSTED, `the identity proof of ${proof.certificate.hsmId} does not match this channel`)
    }
    return proof.certificate
  }
}

/** The key both ends derive from their ephemeral keys (tweetnacl's `box.before`, in OpenSSL). */
function boxKey (ownPrivateKey: KeyObject, otherPublicKey: Uint8Array): Uint8Array {
  if (otherPublicKey.length !== nacl.box.publicKeyLength) throw new CryptoError(CRYPTO_ERR_CHANNEL, 'malformed handshake: wrong key length')
  try {
    return x25519BoxKey(ownPrivateKey, otherPublicKey)
  } catch (err) {
    throw new CryptoError(CRYPTO_ERR_CHANNEL, `malformed handshake: the other side's ephemeral key is refused (${(err as Error).message})`, { cause: err })
  }
}

/** The client half of the handshake. */
export class ClientHandshake {
  private readonly ephemeral = generateX25519()
  readonly hello: ClientHello = { ephemeralPublicKey: this.ephemeral.publicKey, nonce: nacl.randomBytes(32) }

  /**
   * Checks the HSM's answer against the trust anchor and returns the channel. With
   * `expectedClusterId`, an HSM of another cluster is refused even when the anchor matches.
   */
  finish (welcome: ServerWelcome, anchorPublicKey: Uint8Array, expectedClusterId?: string): SecureChannel {
    verifyCertificate(anchorPublicKey, welcome.certificate)
    if (expectedClusterId !== undefined && welcome.certificate.clusterId !== expectedClusterId) {
      throw new CryptoError(CRYPTO_ERR_UNTRUSTED, `the HSM belongs to cluster ${welcome.certificate.clusterId}, not ${expectedClusterId}`)
    }
    const bytes = transcript(this.hello, welcome.ephemeralPublicKey)
    if (!verifySignature(welcome.certificate.publicKey, bytes, welcome.signature)) {
      throw new CryptoError(CRYPTO_ERR_UNTRUSTED, `the HSM ${welcome.certificate.hsmId} did not prove that it holds its identity key`)
    }
    const shared = boxKey(this.ephemeral.privateKey, welcome.ephemeralPublicKey)
    return new SecureChannel(shared, bytes, 'client', welcome.certificate)
  }
}

/** The HSM half of the handshake. */
export function acceptHandshake (hello: ClientHello, identitySecretKey: Uint8Array, certificate: HsmCertificate): { welcome: ServerWelcome, channel: SecureChannel } {
  if (hello.ephemeralPublicKey.length !== nacl.box.publicKeyLength || hello.nonce.length !== 32) {
    throw new CryptoError(CRYPTO_ERR_CHANNEL, 'malformed handshake: wrong key or nonce length')
  }
  const ephemeral = generateX25519()
  const shared = boxKey(ephemeral.privateKey, hello.ephemeralPublicKey)
  const bytes = transcript(hello, ephemeral.publicKey)
  const welcome: ServerWelcome = { ephemeralPublicKey: ephemeral.publicKey, certificate, signature: sign(identitySecretKey, bytes) }
  return { welcome, channel: new SecureChannel(shared, bytes, 'server') }
}
