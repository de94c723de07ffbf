import { describe, expect, it } from 'vitest'
import {
  OPERATION_SPECS, ReturnCode, WireError, asHello, asRequest, checkShape, decode, describeReturnCode, encode,
  formatNodeState, formatReturnCode
} from '@hsmlab/protocol'

function codeOf (fn: () => unknown): string | undefined {
  try { fn() } catch (err) { return (err as { code?: string }).code }
  return undefined
}

describe('codec', () => {
  it('round-trips requests with binary fields', () => {
    const bytes = encode({ id: 7, op: 'sign', args: { handle: 6, mechanism: 1, data: new Uint8Array([1, 2, 3]) } })
    const req = asRequest(decode(bytes))
    expect(req.op).toBe('sign')
    expect(checkShape(OPERATION_SPECS.sign, req.args)).toBeUndefined()
  })

  it('refuses garbage, oversize frames and frames of the wrong shape', () => {
    expect(codeOf(() => decode(new Uint8Array([0x92, 0x01])))).toBe('PROTO_ERR_DECODE')
    expect(codeOf(() => decode(new Uint8Array(100), 10))).toBe('PROTO_ERR_FRAME_TOO_LARGE')
    expect(codeOf(() => asRequest(decode(encode([1, 2]))))).toBe('PROTO_ERR_DECODE')
    expect(codeOf(() => asRequest(decode(encode({ id: 'x', op: 'a' }))))).toBe('PROTO_ERR_DECODE')
    expect(codeOf(() => asHello(decode(encode({ type: 'hello', version: 1, ephemeralPublicKey: new Uint8Array(3), nonce: new Uint8Array(32) }))))).toBe('PROTO_ERR_DECODE')
  })
})

describe('argument shapes', () => {
  it('names the offending field', () => {
    expect(checkShape(OPERATION_SPECS.getKeyInfo, {})).toBe("missing argument 'handle'")
    expect(checkShape(OPERATION_SPECS.getKeyInfo, { handle: 'six' })).toBe("argument 'handle' must be of type int")
    expect(checkShape(OPERATION_SPECS.getKeyInfo, { handle: 6, extra: 1 })).toBe("unknown argument 'extra'")
    expect(checkShape(OPERATION_SPECS.login, { userType: 'ROOT', userName: 'a', password: 'b' })).toMatch(/one of CO, CU/)
    expect(checkShape(OPERATION_SPECS.generateSymmetricKey, { keyType: 31, sizeBytes: 99999, label: 'k' })).toMatch(/above the maximum/)
    expect(checkShape(OPERATION_SPECS.listUsers, null)).toBe('arguments must be a map')
  })
})

describe('return codes', () => {
  it('are unique and print like the real tools', () => {
    const codes = Object.values(ReturnCode).map(info => info.code)
    expect(new Set(codes).size).toBe(codes.length)
    expect(formatReturnCode(ReturnCode.SUCCESS.code)).toBe('0x00')
    expect(formatReturnCode(ReturnCode.INVALID_HANDLE.code)).toBe('0xa8')
    expect(formatNodeState(ReturnCode.INVALID_HANDLE.code)).toBe('0x000000a8')
    expect(describeReturnCode(0x1b).message).toBe('CSP Error: ERR_BAD_PKCS_DATA')
    expect(describeReturnCode(0x12345).name).toBe('RET_UNKNOWN')
  })

  it('a WireError carries the code name across the wire', () => {
    const err = new WireError(0xc6, 'not the owner')
    expect(err.code).toBe('RET_KEY_ACCESS_DENIED')
    expect(err.status).toBe(0xc6)
    expect(err.message).toBe('HSM Error: Key Access is denied (not the owner)')
  })
})
