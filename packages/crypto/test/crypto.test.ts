import { createCipheriv } from 'node:crypto'
import nacl from 'tweetnacl'
import { describe, expect, it } from 'vitest'
import {
  ClientHandshake, acceptHandshake, concatBytes, decodeTrustAnchor, deriveKey, encodeTrustAnchor, generateSecretKey, generateSigningKeyPair,
  hashPassword, issueCertificate, maskObject, open, readMaskedObjectHeader, seal, sign, unmaskObject, utf8, verifyPassword, verifySignature
} from '@hsmlab/crypto'

function codeOf (fn: () => unknown): string | undefined {
  try { fn() } catch (err) { return (err as { code?: string }).code }
  return undefined
}

describe('seal / open', () => {
  it('round-trips and refuses a changed byte or another key', () => {
    const key = generateSecretKey()
    const sealed = seal(key, utf8('secret'))
    expect(new TextDecoder().decode(open(key, sealed))).toBe('secret')
    const changed = sealed.slice(); changed[30] = (changed[30] ?? 0) ^ 1
    expect(codeOf(() => open(key, changed))).toBe('CRYPTO_ERR_AUTH')
    expect(codeOf(() => open(generateSecretKey(), sealed))).toBe('CRYPTO_ERR_AUTH')
    expect(codeOf(() => open(key, sealed.subarray(0, 10)))).toBe('CRYPTO_ERR_FORMAT')
  })
})

describe('masked objects', () => {
  const maskingKey = generateSecretKey()
  const blob = maskObject(maskingKey, { kind: 'key', name: 'key 6', lineage: 'L1' }, utf8('payload'))

  it('open only in the same lineage', () => {
    expect(readMaskedObjectHeader(blob)).toEqual({ kind: 'key', name: 'key 6', lineage: 'L1' })
    expect(new TextDecoder().decode(unmaskObject(maskingKey, 'L1', blob).payload)).toBe('payload')
    expect(codeOf(() => unmaskObject(maskingKey, 'L2', blob))).toBe('CRYPTO_ERR_LINEAGE')
  })

  it('fail authentication when any byte changes, header included', () => {
    for (let i = 0; i < blob.length; i++) {
      const changed = blob.slice(); changed[i] = (changed[i] ?? 0) ^ 0x01
      const code = codeOf(() => unmaskObject(maskingKey, 'L1', changed))
      expect(['CRYPTO_ERR_AUTH', 'CRYPTO_ERR_FORMAT', 'CRYPTO_ERR_LINEAGE'], `byte ${i}`).toContain(code)
    }
  })

  it('refuse a key from another cluster that claims the same lineage', () => {
    expect(codeOf(() => unmaskObject(generateSecretKey(), 'L1', blob))).toBe('CRYPTO_ERR_AUTH')
  })
})

describe('channel handshake', () => {
  const anchor = generateSigningKeyPair()
  const identity = generateSigningKeyPair()
  const certificate = issueCertificate(anchor.secretKey, { hsmId: 'hsm-a', clusterId: 'cluster-x', publicKey: identity.publicKey })

  it('agrees on keys, and frames cannot be replayed or reordered', () => {
    const client = new ClientHandshake()
    const { welcome, channel: server } = acceptHandshake(client.hello, identity.secretKey, certificate)
    const channel = client.finish(welcome, anchor.publicKey, 'cluster-x')
    expect(channel.peerCertificate?.hsmId).toBe('hsm-a')
    const first = channel.encrypt(utf8('one'))
    const second = channel.encrypt(utf8('two'))
    expect(codeOf(() => server.decrypt(second))).toBe('CRYPTO_ERR_CHANNEL')
    expect(new TextDecoder().decode(server.decrypt(first))).toBe('one')
    expect(codeOf(() => server.decrypt(first))).toBe('CRYPTO_ERR_CHANNEL')
    expect(new TextDecoder().decode(channel.decrypt(server.encrypt(utf8('back'))))).toBe('back')
  })

  it('refuses an HSM whose certificate another anchor signed, or of another cluster', () => {
    const client = new ClientHandshake()
    const { welcome } = acceptHandshake(client.hello, identity.secretKey, certificate)
    expect(codeOf(() => client.finish(welcome, generateSigningKeyPair().publicKey))).toBe('CRYPTO_ERR_UNTRUSTED')
    expect(codeOf(() => new ClientHandshake().finish(welcome, anchor.publicKey, 'cluster-y'))).toBe('CRYPTO_ERR_UNTRUSTED')
  })

  it('refuses an HSM that does not hold the identity key of its certificate', () => {
    const client = new ClientHandshake()
    const { welcome } = acceptHandshake(client.hello, generateSigningKeyPair().secretKey, certificate)
    expect(codeOf(() => client.finish(welcome, anchor.publicKey))).toBe('CRYPTO_ERR_UNTRUSTED')
  })

  it('peer identity proofs are bound to one channel', () => {
    const client = new ClientHandshake()
    const { welcome, channel: server } = acceptHandshake(client.hello, identity.secretKey, certificate)
    const channel = client.finish(welcome, anchor.publicKey)
    const peer = generateSigningKeyPair()
    const peerCert = issueCertificate(anchor.secretKey, { hsmId: 'hsm-b', clusterId: 'cluster-x', publicKey: peer.publicKey })
    const proof = channel.proveIdentity(peer.secretKey, peerCert)
    expect(server.verifyIdentity(anchor.publicKey, proof).hsmId).toBe('hsm-b')
    const other = new ClientHandshake()
    const { channel: otherServer } = acceptHandshake(other.hello, identity.secretKey, certificate)
    expect(codeOf(() => otherServer.verifyIdentity(anchor.publicKey, proof))).toBe('CRYPTO_ERR_UNTRUSTED')
  })
})

describe('trust anchor files and passwords', () => {
  it('round-trips a trust anchor and refuses other text', () => {
    const { publicKey } = generateSigningKeyPair()
    expect(decodeTrustAnchor(encodeTrustAnchor(publicKey))).toEqual(publicKey)
    expect(codeOf(() => decodeTrustAnchor('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----'))).toBe('CRYPTO_ERR_FORMAT')
  })

  it('verifies passwords', async () => {
    const verifier = await hashPassword('Password1', 1024)
    expect(await verifyPassword('Password1', verifier)).toBe(true)
    expect(await verifyPassword('password1', verifier)).toBe(false)
  })
})

// Ed25519 and X25519 run in OpenSSL (key-objects.ts); their bytes must stay those of tweetnacl,
// which signed every certificate and peer list already on disk.
describe('signatures and key agreement match tweetnacl', () => {
  it('signs as tweetnacl does, and each verifies the other', () => {
    const mine = generateSigningKeyPair()
    expect(nacl.sign.keyPair.fromSecretKey(mine.secretKey).publicKey).toEqual(mine.publicKey)
    const theirs = nacl.sign.keyPair()
    const message = utf8('hsmlab/cert/v1\0cluster-x\0hsm-a\0')
    expect(sign(theirs.secretKey, message)).toEqual(nacl.sign.detached(message, theirs.secretKey))
    expect(verifySignature(theirs.publicKey, message, nacl.sign.detached(message, theirs.secretKey))).toBe(true)
    expect(nacl.sign.detached.verify(message, sign(mine.secretKey, message), mine.publicKey)).toBe(true)
  })

  it('refuses changed messages, wrong keys and malformed input without throwing', () => {
    const pair = generateSigningKeyPair()
    const message = utf8('peer list v7')
    const signature = sign(pair.secretKey, message)
    expect(verifySignature(pair.publicKey, utf8('peer list v8'), signature)).toBe(false)
    expect(verifySignature(generateSigningKeyPair().publicKey, message, signature)).toBe(false)
    expect(verifySignature(pair.publicKey, message, signature.subarray(1))).toBe(false)
    expect(verifySignature(pair.publicKey.subarray(1), message, signature)).toBe(false)
    expect(verifySignature(new Uint8Array(32).fill(0xff), message, signature)).toBe(false)
    // A key array reused with other bytes is not served from the cache of the old ones.
    const reused = new Uint8Array(pair.secretKey)
    const first = sign(reused, message)
    reused.set(generateSigningKeyPair().secretKey)
    expect(sign(reused, message)).not.toEqual(first)
    expect(verifySignature(reused.subarray(32), message, sign(reused, message))).toBe(true)
  })

  it('derives the channel keys tweetnacl derives, and seals frames with AES-256-GCM', () => {
    const anchor = generateSigningKeyPair()
    const identity = generateSigningKeyPair()
    const certificate = issueCertificate(anchor.secretKey, { hsmId: 'hsm-a', clusterId: 'cluster-x', publicKey: identity.publicKey })
    // A client on tweetnacl: its hello from a tweetnacl key pair, its box key from box.before.
    const ephemeral = nacl.box.keyPair()
    const hello = { ephemeralPublicKey: ephemeral.publicKey, nonce: nacl.randomBytes(32) }
    const { welcome, channel: server } = acceptHandshake(hello, identity.secretKey, certificate)
    const shared = nacl.box.before(welcome.ephemeralPublicKey, ephemeral.secretKey)
    const transcript = concatBytes(utf8('hsmlab/channel/v1\0'), hello.ephemeralPublicKey, hello.nonce, welcome.ephemeralPublicKey)
    const material = concatBytes(shared, nacl.hash(transcript))
    // Frames are AES-256-GCM under each direction's key, the nonce of frame n being 4 zero bytes
    // and n big-endian, the 16-byte tag after the ciphertext.
    const gcm = (plaintext: Uint8Array, n: number, key: Uint8Array): Uint8Array => {
      const nonce = Buffer.alloc(12)
      nonce.writeBigUInt64BE(BigInt(n), 4)
      const c = createCipheriv('aes-256-gcm', key, nonce)
      return new Uint8Array(Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]))
    }
    const frame = gcm(utf8('getKeyInfo'), 0, deriveKey(material, 'channel/client-to-server'))
    expect(new TextDecoder().decode(server.decrypt(frame))).toBe('getKeyInfo')
    // A frame replayed, or changed in one bit, is refused.
    expect(() => server.decrypt(frame)).toThrow()
    const second = gcm(utf8('findKey'), 1, deriveKey(material, 'channel/client-to-server'))
    const flipped = second.slice()
    flipped[0] = (flipped[0] ?? 0) ^ 1
    expect(() => server.decrypt(flipped)).toThrow()
    expect(new TextDecoder().decode(server.decrypt(second))).toBe('findKey')
    // Every frame after it too.
    const toClient = deriveKey(material, 'channel/server-to-client')
    for (let n = 0; n < 300; n++) {
      const plaintext = utf8(`result ${n} `.repeat(n % 7))
      expect(new Uint8Array(server.encrypt(plaintext))).toEqual(gcm(plaintext, n, toClient))
    }
  })

  it('refuses an ephemeral key of small order', () => {
    const anchor = generateSigningKeyPair()
    const identity = generateSigningKeyPair()
    const certificate = issueCertificate(anchor.secretKey, { hsmId: 'hsm-a', clusterId: 'cluster-x', publicKey: identity.publicKey })
    expect(codeOf(() => acceptHandshake({ ephemeralPublicKey: new Uint8Array(32), nonce: new Uint8Array(32) }, identity.secretKey, certificate))).toBe('CRYPTO_ERR_CHANNEL')
  })
})
