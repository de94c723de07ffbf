/**
 * Property tests of the HSM's frame decoder and dispatcher (issue 9, §1 and §5), against one real
 * `hsmlab-hsm` process over a raw, handshaken WebSocket: random bytes, random MessagePack values,
 * and requests with random operation names (the protocol's, inherited ones like `constructor`,
 * and made-up ones) carrying random arguments (the operations' own field names, inherited names,
 * and others). Every frame must get one answer with a return code the protocol defines, never
 * RET_INTERNAL (malformed input is the client's error, not the HSM's), arguments the operation
 * does not define must be refused, and the HSM must keep serving this and other connections.
 *
 * Runs are bounded in number and time so that the file takes seconds; fast-check prints the seed
 * and the shortest failing frame when a property fails (replay with `{ seed, path }`).
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { OPERATION_SPECS, ReturnCode, describeReturnCode, encode } from '@hsmlab/protocol'
import type { FieldSpec, ResponseFrame } from '@hsmlab/protocol'
import { activate, connect, rawConnect, startTestHsm } from './helpers.js'
import type { RawClient } from './helpers.js'

const INHERITED = ['constructor', '__proto__', 'hasOwnProperty', 'toString', 'valueOf', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString']
const OPERATIONS = Object.keys(OPERATION_SPECS)
const FIELDS = [...new Set(Object.values(OPERATION_SPECS).flatMap(spec => Object.keys(spec)))]
const RUN_LIMIT = { numRuns: 400, interruptAfterTimeLimit: 4_000 }

/** Values of the kinds MessagePack carries, nested a little. */
const value: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>(tie => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.integer({ min: 0, max: 0x7fffffff }),
    fc.double(),
    fc.string({ maxLength: 40 }),
    fc.constantFrom(...INHERITED, ...OPERATIONS, 'CO', 'CU', 'PRECO', 'admin', 'password', 'key', 'user'),
    fc.uint8Array({ maxLength: 64 }),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS, ...INHERITED), fc.string({ maxLength: 10 })), tie('v'), { maxKeys: 5 })
  )
})).v

const opName = fc.oneof(fc.constantFrom(...OPERATIONS), fc.constantFrom(...INHERITED), fc.string({ maxLength: 20 }))
const args = fc.oneof(
  fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), fc.constantFrom(...INHERITED), fc.string({ maxLength: 10 })), value, { maxKeys: 6 }),
  value
)

/** A value of a field's type, near the values handlers branch on (small handles, 0 and 1, known names). */
function fieldValue (field: FieldSpec): fc.Arbitrary<unknown> {
  const int = field.oneOf !== undefined
    ? fc.constantFrom(...field.oneOf)
    : fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom(262_144 + 6, 262_150, 512, 1_073_742_353), fc.integer({ min: 0, max: 0x7fffffff }))
  const str = field.oneOf !== undefined ? fc.constantFrom(...field.oneOf) : fc.oneof(fc.constantFrom('admin', 'app_user', 'alice', ...INHERITED), fc.string({ maxLength: 12 }))
  switch (field.type) {
    case 'int': return int
    case 'string': return str
    case 'int|string': return fc.oneof(int, str)
    case 'bool': return fc.boolean()
    case 'bytes': return fc.uint8Array({ maxLength: 80 })
    case 'int[]': return fc.array(fc.integer({ min: 0, max: 8 }), { maxLength: 3 })
    case 'string[]': return fc.array(str, { maxLength: 3 })
    case 'bytes[]': return fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 3 })
    case 'object': return fc.dictionary(fc.constantFrom('hsmId', 'clusterId', 'publicKey', 'signature', ...INHERITED), value, { maxKeys: 4 })
    case 'object[]': return fc.array(fc.dictionary(fc.constantFrom('hsmId', 'endpoint', ...INHERITED), value, { maxKeys: 3 }), { maxLength: 2 })
  }
}

/** Arguments that fit an operation's shape, so that its handler runs; waits are kept short. */
function fittingArgs (op: keyof typeof OPERATION_SPECS): fc.Arbitrary<Record<string, unknown>> {
  const parts: Record<string, fc.Arbitrary<unknown>> = {}
  for (const [name, field] of Object.entries(OPERATION_SPECS[op])) {
    // A key that must reach peers this lone HSM does not have would wait for them.
    parts[name] = name === 'minServers' ? fc.constant(1) : name === 'timeoutMs' ? fc.integer({ min: 0, max: 50 }) : fieldValue(field)
  }
  const required = Object.entries(OPERATION_SPECS[op]).filter(([, f]) => f.optional !== true).map(([n]) => n)
  return fc.record(parts, { requiredKeys: required })
}

/** A defined return code that is not RET_INTERNAL. */
function expectWireAnswer (answer: ResponseFrame): void {
  expect(describeReturnCode(answer.status).name).not.toBe('RET_UNKNOWN')
  expect(answer.status).not.toBe(ReturnCode.INTERNAL.code)
}

async function exchange (raw: RawClient, send: () => void): Promise<ResponseFrame> {
  send()
  return await raw.next()
}

describe('the HSM and names every object inherits', () => {
  it('answers them as operations with RET_UNKNOWN_OPERATION and as arguments with RET_INVALID_INPUT', async () => {
    const hsm = await startTestHsm()
    const raw = await rawConnect(hsm.url, hsm.cluster.anchor.publicKey)
    let id = 1
    for (const name of INHERITED) {
      expect(await exchange(raw, () => { raw.sendValue({ id, op: name, args: {} }) })).toMatchObject({ id, status: ReturnCode.UNKNOWN_OPERATION.code })
      id++
      const args = JSON.parse(`{${JSON.stringify(name)}: 1}`) as unknown
      expect(await exchange(raw, () => { raw.sendValue({ id, op: 'getHsmInfo', args }) })).toMatchObject({ id, status: ReturnCode.INVALID_INPUT.code })
      id++
    }
  })
})

describe('the HSM under random frames', () => {
  it('answers random requests with a defined return code, never RET_INTERNAL, and refuses arguments an operation does not define', async () => {
    const hsm = await startTestHsm()
    const raw = await rawConnect(hsm.url, hsm.cluster.anchor.publicKey)
    let id = 1
    await fc.assert(fc.asyncProperty(opName, args, async (op, a) => {
      const requestId = id++
      const answer = await exchange(raw, () => { raw.sendValue({ id: requestId, op, args: a }) })
      expect(answer.id).toBe(requestId)
      expectWireAnswer(answer)
      // Absent (nil) arguments are an empty map, as asRequest reads them.
      const given = a ?? {}
      const isMap = typeof given === 'object' && !Array.isArray(given) && !(given instanceof Uint8Array)
      const spec = Object.hasOwn(OPERATION_SPECS, op) ? OPERATION_SPECS[op as keyof typeof OPERATION_SPECS] : undefined
      if (spec === undefined) {
        expect(answer.status).toBe(ReturnCode.UNKNOWN_OPERATION.code)
      } else if (!isMap || Object.keys(given).some(name => !Object.hasOwn(spec, name))) {
        // Arguments that are not a map, or name a field the operation does not define (an
        // inherited name included), never reach a handler.
        expect(answer.status).toBe(ReturnCode.INVALID_INPUT.code)
      }
    }), RUN_LIMIT)
    // The same connection and a new one are still served.
    expect(await exchange(raw, () => { raw.sendValue({ id: 1, op: 'getHsmInfo', args: {} }) })).toMatchObject({ id: 1, status: 0 })
    expect((await (await connect(hsm)).call('getHsmInfo', {})).hsmId).toBe(hsm.hsmId)
  })

  it('answers random but well-shaped requests of a logged-in CO and CU with a defined return code, never RET_INTERNAL', async () => {
    const hsm = await startTestHsm()
    const co = await activate(hsm)
    await co.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' })
    const sessions = await Promise.all([['CO', 'admin', 'officer1pw'], ['CU', 'alice', 'alicepw1']].map(async ([userType, userName, password]) => {
      const raw = await rawConnect(hsm.url, hsm.cluster.anchor.publicKey)
      expect(await exchange(raw, () => { raw.sendValue({ id: 1, op: 'login', args: { userType, userName, password } }) })).toMatchObject({ status: 0 })
      return raw
    }))
    // Logging in or out would change the session under the other runs; RSA key generation
    // would spend the time budget on a few runs.
    const ops = OPERATIONS.filter(op => op !== 'login' && op !== 'logout' && op !== 'generateKeyPair') as Array<keyof typeof OPERATION_SPECS>
    const request = fc.constantFrom(...ops).chain(op => fc.tuple(fc.constant(op), fittingArgs(op)))
    // Sometimes one more argument, named as something every object inherits: refused, whoever asks.
    const extra = fc.option(fc.constantFrom(...INHERITED.filter(name => name !== '__proto__')), { freq: 4 })
    let id = 10
    await fc.assert(fc.asyncProperty(fc.constantFrom(0, 1), request, extra, async (who, [op, a], inherited) => {
      const raw = sessions[who] as RawClient
      const requestId = id++
      const args = inherited === null ? a : { ...a, [inherited]: 1 }
      const answer = await exchange(raw, () => { raw.sendValue({ id: requestId, op, args }) })
      expect(answer.id).toBe(requestId)
      expectWireAnswer(answer)
      if (inherited !== null) expect(answer.status).toBe(ReturnCode.INVALID_INPUT.code)
    }), RUN_LIMIT)
    expect((await (await connect(hsm)).call('getHsmInfo', {})).hsmId).toBe(hsm.hsmId)
  })

  it('answers random and mutated frames with RET_INVALID_FRAME or another defined code, and keeps serving', async () => {
    const hsm = await startTestHsm()
    const raw = await rawConnect(hsm.url, hsm.cluster.anchor.publicKey)
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 256 }),
      // A request's bytes, cut short or with bytes changed.
      fc.tuple(opName, value, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.option(fc.nat()))
        .map(([op, a, changes, cut]) => {
          const encoded = encodeValue({ id: 3, op, args: a })
          for (const [at, b] of changes) encoded[at % encoded.length] = b
          return cut === null ? encoded : encoded.subarray(0, cut % (encoded.length + 1))
        }),
      value.map(v => encodeValue(v))
    )
    await fc.assert(fc.asyncProperty(bytes, async frame => {
      const answer = await exchange(raw, () => { raw.sendPlain(frame) })
      expectWireAnswer(answer)
    }), RUN_LIMIT)
    expect(await exchange(raw, () => { raw.sendValue({ id: 2, op: 'listUsers', args: {} }) })).toMatchObject({ id: 2, status: 0 })
    expect((await (await connect(hsm)).call('listUsers', {})).users).toHaveLength(2)
  })
})

/** A copy of the value's MessagePack bytes, free to change. */
function encodeValue (v: unknown): Uint8Array {
  return new Uint8Array(encode(v))
}
