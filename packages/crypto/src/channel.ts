import nacl from 'tweetnacl'
import { concatBytes, deriveKey, utf8 } from './bytes.js'
import { CryptoError, CRYPTO_ERR_CHANNEL, CRYPTO_ERR_UNTRUSTED } from './errors.js'
import { sign, verifyCertificate, verifySignature } from './identity.js'
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
  private readonly sendKey: Uint8Array
  private readonly receiveKey: Uint8Array
  private sendCounter = 0n
  private receiveCounter = 0n

  constructor (shared: Uint8Array, transcriptBytes: Uint8Array, role: 'client' | 'server', peerCertificate?: HsmCertificate) {
    const material = concatBytes(shared, nacl.hash(transcriptBytes))
    const toServer = deriveKey(material, 'channel/client-to-server')
    const toClient = deriveKey(material, 'channel/server-to-client')
    this.sendKey = role === 'client' ? toServer : toClient
    this.receiveKey = role === 'client' ? toClient : toServer
    this.transcript = transcriptBytes
    this.peerCertificate = peerCertificate
  }

  private static nonce (counter: bigint): Uint8Array {
    const nonce = new Uint8Array(nacl.secretbox.nonceLength)
    new DataView(nonce.buffer).setBigUint64(nonce.length - 8, counter)
    return nonce
  }

  /** Encrypts one frame. */
  encrypt (plaintext: Uint8Array): Uint8Array {
    const box = nacl.secretbox(plaintext, SecureChannel.nonce(this.sendCounter), this.sendKey)
    this.sendCounter++
    return box
  }

  /** Decrypts the next frame; throws `CRYPTO_ERR_CHANNEL` if it was changed, replayed or reordered. */
  decrypt (frame: Uint8Array): Uint8Array {
    const plain = nacl.secretbox.open(frame, SecureChannel.nonce(this.receiveCounter), this.receiveKey)
    if (plain === null) throw new CryptoError(CRYPTO_ERR_CHANNEL, 'an encrypted frame failed authentication (changed, replayed or out of order)')
    this.receiveCounter++
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

/** The client half of the handshake. */
export class ClientHandshake {
  private readonly ephemeral = nacl.box.keyPair()
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
    const shared = nacl.box.before(welcome.ephemeralPublicKey, this.ephemeral.secretKey)
    return new SecureChannel(shared, bytes, 'client', welcome.certificate)
  }
}

/** The HSM half of the handshake. */
export function acceptHandshake (hello: ClientHello, identitySecretKey: Uint8Array, certificate: HsmCertificate): { welcome: ServerWelcome, channel: SecureChannel } {
  if (hello.ephemeralPublicKey.length !== nacl.box.publicKeyLength || hello.nonce.length !== 32) {
    throw new CryptoError(CRYPTO_ERR_CHANNEL, 'malformed handshake: wrong key or nonce length')
  }
  const ephemeral = nacl.box.keyPair()
  const bytes = transcript(hello, ephemeral.publicKey)
  const welcome: ServerWelcome = { ephemeralPublicKey: ephemeral.publicKey, certificate, signature: sign(identitySecretKey, bytes) }
  const shared = nacl.box.before(hello.ephemeralPublicKey, ephemeral.secretKey)
  return { welcome, channel: new SecureChannel(shared, bytes, 'server') }
}
