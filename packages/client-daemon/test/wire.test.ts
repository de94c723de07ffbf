/**
 * The daemon's frame codec: any request the C library could write is cut out of a byte stream
 * however the stream is split, and a frame above the limit is refused (fast-check, bounded).
 */
import fc from 'fast-check'
import { expect, it } from 'vitest'
import { CLIENT_DAEMON_ERR_FRAME, FrameReader, decodeFields, encodeRequest } from '../src/index.js'

it('reads back every request, however the stream is split', () => {
  fc.assert(fc.property(
    fc.array(fc.record({ op: fc.integer({ min: 1, max: 20 }), fields: fc.array(fc.tuple(fc.integer({ min: 1, max: 40 }), fc.uint8Array({ maxLength: 300 })), { maxLength: 6 }) }), { minLength: 1, maxLength: 5 }),
    fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 20 }),
    (requests, cuts) => {
      const stream = Buffer.concat(requests.map(r => encodeRequest(r.op, r.fields.map(([t, v]) => [t, Buffer.from(v)]))))
      const reader = new FrameReader(1 << 20)
      const bodies: Buffer[] = []
      let at = 0
      for (let i = 0; at < stream.length; i++) {
        const n = cuts[i % cuts.length] as number
        bodies.push(...reader.push(stream.subarray(at, at + n)))
        at += n
      }
      expect(bodies).toHaveLength(requests.length)
      bodies.forEach((body, i) => {
        const r = requests[i]
        expect(body.readUInt16BE(0)).toBe(r?.op)
        expect(decodeFields(body, 4).list.map(([t, v]) => [t, [...v]])).toEqual(r?.fields.map(([t, v]) => [t, [...v]]))
      })
    }
  ), { numRuns: 200 })
})

it('refuses a frame larger than frameBytesMax', () => {
  const reader = new FrameReader(16)
  expect(() => reader.push(encodeRequest(1, [[7, Buffer.alloc(64)]]))).toThrow(expect.objectContaining({ code: CLIENT_DAEMON_ERR_FRAME }))
})
