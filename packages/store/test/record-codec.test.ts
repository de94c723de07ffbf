// The record plaintext is assembled by hand around pre-encoded changes; any msgpack decoder
// must read it as the `{ seq, changes }` map the README promises.
import { unpack } from 'msgpackr'
import { describe, expect, it } from 'vitest'
import { decodeRecord, encodeChanges, encodeRecord } from '../src/record-codec.js'

describe('encodeRecord', () => {
  for (const seq of [1, 127, 128, 65536, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER]) {
    it(`writes a standard msgpack map for seq ${seq}`, () => {
      const batches = [
        encodeChanges([{ op: 'put', id: 'a', value: { n: 1, bytes: new Uint8Array([1, 2]) } }]),
        encodeChanges([]),
        encodeChanges([{ op: 'delete', id: 'b' }, { op: 'put', id: 'c', value: 'C' }])
      ]
      const plaintext = encodeRecord(seq, batches)
      const plain = unpack(plaintext)
      expect(plain).toMatchObject({
        seq,
        changes: [{ op: 'put', id: 'a', value: { n: 1 } }, { op: 'delete', id: 'b' }, { op: 'put', id: 'c', value: 'C' }]
      })
      expect(Array.from(plain.changes[0].value.bytes as Uint8Array)).toEqual([1, 2])
      expect(decodeRecord(plaintext).changes).toEqual([
        { op: 'put', id: 'a', value: { n: 1, bytes: new Uint8Array([1, 2]) } }, { op: 'delete', id: 'b' }, { op: 'put', id: 'c', value: 'C' }
      ])
    })
  }

  it('holds more than 65535 changes', () => {
    const batch = encodeChanges(Array.from({ length: 70_000 }, (_, i) => ({ op: 'delete', id: String(i) })))
    const { seq, changes } = decodeRecord(encodeRecord(9, [batch]))
    expect(seq).toBe(9)
    expect(changes).toHaveLength(70_000)
    expect(changes[69_999]).toEqual({ op: 'delete', id: '69999' })
  })

  it('rejects plaintext that is not a record', () => {
    expect(() => decodeRecord(Uint8Array.of(0x82, 0xa3))).toThrow(/is not msgpack/)
    expect(() => decodeRecord(encodeChanges([{ op: 'delete', id: 'x' }])[0]!.bytes)).toThrow(/no valid seq/)
  })
})

describe('settled values', () => {
  // Keyed by attribute id, as an HSM's key attributes are: ids from 0 to 528, few of them.
  const attributes = { 0: 4, 1: 1, 3: 'label', 134: 0, 256: 31, 371: new Uint8Array([1, 2, 3]), 528: 0, name: 'named too' }

  it('keeps a map with sparse numeric keys equal, in key order, and frozen', () => {
    const [encoded] = encodeChanges([{ op: 'put', id: 'k', value: { attributes } }])
    const value = (encoded!.change as { value: { attributes: Record<string, unknown> } }).value
    expect(value.attributes).toEqual(attributes)
    expect(Object.keys(value.attributes)).toEqual(['0', '1', '3', '134', '256', '371', '528', 'name'])
    expect(Object.isFrozen(value)).toBe(true)
    expect(Object.isFrozen(value.attributes)).toBe(true)
    expect(() => { value.attributes[1] = 0 }).toThrow(TypeError)
    expect(value.attributes[1]).toBe(1)
  })
})
