/**
 * The wire, as a misbehaving client sees it: one real `hsmlab-hsm` process, raw WebSockets. Each
 * bad frame gets its return code, only the offending request (or, for a frame that breaks the
 * channel, only that connection) fails, and the HSM keeps serving everyone else.
 */
import { describe, expect, it } from 'vitest'
import { HsmConnection } from '@hsmlab/client'
import { createClusterSecrets } from '../src/index.js'
import { PROTOCOL_VERSION, ReturnCode, asResponse, decode, encode } from '@hsmlab/protocol'
import { connect, openSocket, rawConnect, startTestHsm } from './helpers.js'

describe('the HSM server', () => {
  it('answers undecodable frames, unknown operations and bad arguments, and keeps serving', async () => {
    const hsm = await startTestHsm()
    const raw = await rawConnect(hsm.url, hsm.cluster.anchor.publicKey)

    // Encrypted, but not MessagePack.
    raw.sendPlain(new Uint8Array([0xc1, 0xc1, 0xc1]))
    expect(await raw.next()).toMatchObject({ id: 0, status: ReturnCode.INVALID_FRAME.code })
    // MessagePack, but not a request.
    raw.sendValue([1, 2, 3])
    expect(await raw.next()).toMatchObject({ id: 0, status: ReturnCode.INVALID_FRAME.code })
    raw.sendValue({ id: 7, args: {} })
    expect(await raw.next()).toMatchObject({ id: 7, status: ReturnCode.INVALID_FRAME.code })

    raw.sendValue({ id: 8, op: 'formatHardDisk', args: {} })
    expect(await raw.next()).toMatchObject({ id: 8, status: ReturnCode.UNKNOWN_OPERATION.code, message: expect.stringContaining('formatHardDisk') })
    raw.sendValue({ id: 9, op: 'toString', args: {} })
    expect(await raw.next()).toMatchObject({ id: 9, status: ReturnCode.UNKNOWN_OPERATION.code })

    raw.sendValue({ id: 10, op: 'login', args: { userType: 'CO', userName: 'admin' } })
    expect(await raw.next()).toMatchObject({ id: 10, status: ReturnCode.INVALID_INPUT.code, message: expect.stringContaining("'password'") })
    raw.sendValue({ id: 11, op: 'login', args: { userType: 'XX', userName: 'admin', password: 'password' } })
    expect(await raw.next()).toMatchObject({ id: 11, status: ReturnCode.INVALID_INPUT.code, message: expect.stringContaining("'userType'") })
    raw.sendValue({ id: 12, op: 'getCertificate', args: { certType: 3 } })
    expect(await raw.next()).toMatchObject({ id: 12, status: ReturnCode.INVALID_INPUT.code, message: expect.stringContaining("'certType'") })
    raw.sendValue({ id: 13, op: 'listUsers', args: { extra: 1 } })
    expect(await raw.next()).toMatchObject({ id: 13, status: ReturnCode.INVALID_INPUT.code, message: expect.stringContaining("'extra'") })
    raw.sendValue({ id: 14, op: 'listUsers', args: 'nope' })
    expect(await raw.next()).toMatchObject({ id: 14, status: ReturnCode.INVALID_INPUT.code })

    // The same connection still works, and so does a second one.
    raw.sendValue({ id: 15, op: 'listUsers', args: {} })
    expect(await raw.next()).toMatchObject({ id: 15, status: 0, result: { users: expect.any(Array) } })
    const other = await connect(hsm)
    expect((await other.call('listUsers', {})).users).toHaveLength(2)
  })

  it('closes only a connection whose frame fails to decrypt', async () => {
    const hsm = await startTestHsm()
    const bystander = await connect(hsm)
    const raw = await rawConnect(hsm.url, hsm.cluster.anchor.publicKey)
    raw.sendRaw(new Uint8Array(64).fill(7))
    expect(await raw.next()).toMatchObject({ id: 0, status: ReturnCode.INVALID_FRAME.code })
    expect(await raw.closed).toBe(1002)
    expect((await bystander.call('getHsmInfo', {})).hsmId).toBe(hsm.hsmId)
    const again = await connect(hsm)
    expect((await again.call('listUsers', {})).users).toHaveLength(2)
  })

  it('refuses a bad hello in clear and closes that socket', async () => {
    const hsm = await startTestHsm()
    const first = await openSocket(hsm.url)
    first.socket.send(encode({ type: 'hello', version: PROTOCOL_VERSION, ephemeralPublicKey: new Uint8Array(5), nonce: new Uint8Array(32) }))
    expect(asResponse(decode(await first.nextMessage()))).toMatchObject({ id: 0, status: ReturnCode.INVALID_FRAME.code })
    expect(await first.closed).toBe(1002)

    const second = await openSocket(hsm.url)
    second.socket.send(encode({ type: 'hello', version: 99, ephemeralPublicKey: new Uint8Array(32), nonce: new Uint8Array(32) }))
    expect(asResponse(decode(await second.nextMessage()))).toMatchObject({ status: ReturnCode.INVALID_FRAME.code, message: expect.stringContaining('version 99') })

    const third = await openSocket(hsm.url)
    third.socket.send('hello?')
    expect(asResponse(decode(await third.nextMessage()))).toMatchObject({ status: ReturnCode.INVALID_FRAME.code })

    expect((await (await connect(hsm)).call('listUsers', {})).users).toHaveLength(2)
  })

  it('is refused by a client that trusts another anchor or expects another cluster', async () => {
    const hsm = await startTestHsm()
    const stranger = createClusterSecrets()
    await expect(HsmConnection.connect({ url: hsm.url, trustAnchor: stranger.anchor.publicKey })).rejects.toMatchObject({ code: 'CLIENT_ERR_UNTRUSTED' })
    await expect(HsmConnection.connect({ url: hsm.url, trustAnchor: hsm.cluster.anchor.publicKey, expectedClusterId: stranger.clusterId }))
      .rejects.toMatchObject({ code: 'CLIENT_ERR_UNTRUSTED' })
    const conn = await connect(hsm)
    expect(conn.hsmId).toBe(hsm.hsmId)
    expect(conn.clusterId).toBe(hsm.cluster.clusterId)
  })

  it('processes pipelined requests of one connection and answers each by id', async () => {
    const hsm = await startTestHsm()
    const conn = await connect(hsm)
    const answers = await Promise.all(Array.from({ length: 50 }, async (_, i) => i % 2 === 0
      ? (await conn.call('listUsers', {})).users.length
      : (await conn.call('getHsmInfo', {})).userCount))
    expect(answers).toEqual(Array(50).fill(2))
  })
})
