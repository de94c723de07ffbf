/**
 * Property tests of the frame decoder and the argument checker (issue 9, §1 and §5): whatever
 * bytes arrive, `decode` and `asRequest` either give a value or throw a `ProtocolError` with a
 * documented code, and `checkShape` never throws and accepts only the fields an operation
 * defines as its own, never names every object inherits (`constructor`, `toString`...).
 * Bounded in runs and time; fast-check prints the seed of a failure.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { OPERATION_SPECS, PROTO_ERR_DECODE, PROTO_ERR_FRAME_TOO_LARGE, ProtocolError, asRequest, checkShape, decode, encode } from '../src/index.js'

const INHERITED = ['constructor', '__proto__', 'hasOwnProperty', 'toString', 'valueOf', 'isPrototypeOf', 'toLocaleString']
const LIMIT = { numRuns: 2_000, interruptAfterTimeLimit: 3_000 }

function expectProtocolError (fn: () => unknown): void {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError)
    expect([PROTO_ERR_DECODE, PROTO_ERR_FRAME_TOO_LARGE]).toContain((err as ProtocolError).code)
  }
}

describe('decode, asRequest and checkShape under random input', () => {
  it('decode and asRequest give a request or a ProtocolError, for random and mutated bytes', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.tuple(fc.anything(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 })).map(([v, changes]) => {
        const encoded = new Uint8Array(encode({ id: 1, op: 'getKeyInfo', args: v }))
        for (const [at, b] of changes) encoded[at % encoded.length] = b
        return encoded
      })
    )
    fc.assert(fc.property(bytes, b => {
      expectProtocolError(() => {
        const request = asRequest(decode(b, 150))
        expect(Number.isSafeInteger(request.id)).toBe(true)
        expect(typeof request.op).toBe('string')
      })
    }), LIMIT)
  })

  it('checkShape never throws, and refuses every field an operation does not define as its own', () => {
    const ops = Object.keys(OPERATION_SPECS) as Array<keyof typeof OPERATION_SPECS>
    const key = fc.oneof(fc.constantFrom(...INHERITED), fc.string({ maxLength: 8 }), fc.constantFrom('handle', 'userName', 'label'))
    fc.assert(fc.property(fc.constantFrom(...ops), fc.oneof(fc.dictionary(key, fc.anything(), { maxKeys: 4 }), fc.anything()), (op, args) => {
      const spec = OPERATION_SPECS[op]
      const problem = checkShape(spec, args)
      const isMap = typeof args === 'object' && args !== null && !Array.isArray(args) && !(args instanceof Uint8Array)
      if (!isMap) expect(problem).toBe('arguments must be a map')
      else if (Object.keys(args).some(name => !Object.hasOwn(spec, name))) expect(problem).toMatch(/^unknown argument /)
    }), LIMIT)
  })

  it('refuses inherited names as arguments', () => {
    for (const name of INHERITED) {
      const args = JSON.parse(`{"handle": 6, ${JSON.stringify(name)}: 1}`) as unknown
      expect(checkShape(OPERATION_SPECS.getKeyInfo, args)).toBe(`unknown argument '${name}'`)
    }
  })
})
