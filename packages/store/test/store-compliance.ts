/**
 * The compliance suite every `Store` implementation must pass (after libp2p's
 * interface-compliance-tests): `storeComplianceTests('memoryStore', () => memoryStore())`.
 * The factory runs inside each test, so it may use per-test helpers such as `tmpDir()`.
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import type { Change, Store } from '../src/index.js'

/** Makes a fresh, empty store for one test; the suite closes it when the test ends. */
export type StoreFactory = () => Promise<Store<unknown>> | Store<unknown>

/** Registers the compliance tests for one store implementation. */
export function storeComplianceTests (name: string, factory: StoreFactory): void {
  const fresh = async (): Promise<Store<unknown>> => {
    const store = await factory()
    onTestFinished(async () => { await store.close() })
    return store
  }

  describe(`${name} (store compliance)`, () => {
    it('puts, gets and deletes', async () => {
      const store = await fresh()
      expect(store.get('a')).toBeUndefined()
      expect(store.has('a')).toBe(false)
      await store.apply([{ op: 'put', id: 'a', value: { n: 1 } }])
      expect(store.get('a')).toEqual({ n: 1 })
      expect(store.has('a')).toBe(true)
      await store.apply([{ op: 'put', id: 'a', value: { n: 2 } }])
      expect(store.get('a')).toEqual({ n: 2 })
      await store.apply([{ op: 'delete', id: 'a' }])
      expect(store.get('a')).toBeUndefined()
      expect(store.has('a')).toBe(false)
      // Deleting what is not there is not an error.
      await store.apply([{ op: 'delete', id: 'never' }])
      expect(store.size).toBe(0)
    })

    it('shows a change only once apply has resolved', async () => {
      const store = await fresh()
      const applied = store.apply([{ op: 'put', id: 'a', value: 1 }])
      expect(store.has('a')).toBe(false)
      await applied
      expect(store.get('a')).toBe(1)
    })

    it('applies a batch in order, the last change to an id winning', async () => {
      const store = await fresh()
      await store.apply([
        { op: 'put', id: 'a', value: 1 },
        { op: 'put', id: 'b', value: 2 },
        { op: 'delete', id: 'a' },
        { op: 'put', id: 'b', value: 3 }
      ])
      expect(store.has('a')).toBe(false)
      expect(store.get('b')).toBe(3)
      expect(store.size).toBe(1)
    })

    it('rejects a batch with a bad change as a whole, leaving the store as it was', async () => {
      const store = await fresh()
      await store.apply([{ op: 'put', id: 'keep', value: 1 }])
      const bad: unknown[] = [
        [{ op: 'put', id: 'x', value: 1 }, { op: 'rename', id: 'keep' }],
        [{ op: 'put', id: 'x', value: 1 }, { op: 'put', id: 7, value: 1 }],
        [{ op: 'put', id: 'x', value: 1 }, { op: 'put', id: 'y' }],
        [{ op: 'delete', id: 'keep' }, { op: 'put', id: 'y', value: Symbol('no') }],
        [{ op: 'delete', id: 'keep' }, null],
        'not an array'
      ]
      for (const changes of bad) {
        await expect(store.apply(changes as Array<Change<unknown>>)).rejects.toMatchObject({ code: 'STORE_ERR_INVALID_ARGUMENT' })
      }
      expect([...store.entries()]).toEqual([['keep', 1]])
      // The store keeps working after rejecting bad batches.
      await store.apply([{ op: 'put', id: 'after', value: 2 }])
      expect(store.get('after')).toBe(2)
    })

    it('applies concurrent batches in call order and resolves them in that order', async () => {
      const store = await fresh()
      const resolved: number[] = []
      const applies = []
      for (let i = 0; i < 50; i++) {
        applies.push(store.apply([{ op: 'put', id: 'same', value: i }, { op: 'put', id: `k${i}`, value: i }]).then(() => {
          resolved.push(i)
          // Every earlier batch is visible when a later one resolves.
          expect(store.get(`k${i}`)).toBe(i)
          if (i > 0) expect(store.get(`k${i - 1}`)).toBe(i - 1)
        }))
      }
      await Promise.all(applies)
      expect(resolved).toEqual([...Array(50).keys()])
      expect(store.get('same')).toBe(49)
      expect(store.size).toBe(51)
    })

    it('counts, lists values and entries in first-put order', async () => {
      const store = await fresh()
      expect(store.size).toBe(0)
      expect([...store.values()]).toEqual([])
      await store.apply([{ op: 'put', id: 'b', value: 'B' }, { op: 'put', id: 'a', value: 'A' }])
      await store.apply([{ op: 'put', id: 'c', value: 'C' }, { op: 'put', id: 'b', value: 'B2' }])
      expect(store.size).toBe(3)
      expect([...store.values()]).toEqual(['B2', 'A', 'C'])
      expect([...store.entries()]).toEqual([['b', 'B2'], ['a', 'A'], ['c', 'C']])
      await store.apply([{ op: 'delete', id: 'a' }])
      expect(store.size).toBe(2)
      expect([...store.entries()]).toEqual([['b', 'B2'], ['c', 'C']])
    })

    it('resolves an empty batch', async () => {
      const store = await fresh()
      await store.apply([])
      expect(store.size).toBe(0)
    })

    it('keeps plain data as msgpack decodes it: nested objects, bigint, byte arrays', async () => {
      const store = await fresh()
      const value = {
        name: 'key 7', n: 2 ** 40, f: 1.5, ok: true, none: null, big: 2n ** 63n - 1n, huge: 2n ** 100n,
        bytes: new Uint8Array([1, 2, 3]), list: [1, 'two', { three: 3 }, new Uint8Array([4])]
      }
      await store.apply([{ op: 'put', id: 'v', value }])
      const got = store.get('v') as typeof value
      expect(got).toEqual(value)
      // Plain Uint8Array, not a Buffer view into some larger decode buffer.
      expect(Object.getPrototypeOf(got.bytes)).toBe(Uint8Array.prototype)
      expect(got.bytes.byteLength).toBe(got.bytes.buffer.byteLength)
      expect(Object.getPrototypeOf(got.list[3])).toBe(Uint8Array.prototype)
      // What is not plain data comes back as msgpack decodes it, the same before and after a restart.
      await store.apply([{ op: 'put', id: 'm', value: { map: new Map([['a', 1]]), instance: new (class { x = 1 })() } }])
      expect(store.get('m')).toEqual({ map: { a: 1 }, instance: { x: 1 } })
    })

    it('does not let a caller change a value without apply', async () => {
      const store = await fresh()
      const input = { a: { b: [1, 2] }, bytes: new Uint8Array([9]) }
      await store.apply([{ op: 'put', id: 'v', value: input }])
      // The value given to apply is not retained...
      input.a.b.push(3)
      input.bytes[0] = 0
      expect(store.get('v')).toEqual({ a: { b: [1, 2] }, bytes: new Uint8Array([9]) })
      // ...and the value read back is frozen all the way down.
      const got = store.get('v') as { a: { b: number[] }, x?: number }
      expect(Object.isFrozen(got)).toBe(true)
      expect(Object.isFrozen(got.a)).toBe(true)
      expect(Object.isFrozen(got.a.b)).toBe(true)
      expect(() => { got.a.b.push(3) }).toThrow(TypeError)
      expect(() => { got.x = 1 }).toThrow(TypeError)
      expect((store.get('v') as typeof got).a.b).toEqual([1, 2])
    })

    it('closes twice, rejects apply after close, and still finishes batches accepted before', async () => {
      const store = await fresh()
      const before = store.apply([{ op: 'put', id: 'a', value: 1 }])
      const closed = store.close()
      await expect(store.apply([{ op: 'put', id: 'b', value: 2 }])).rejects.toMatchObject({ code: 'STORE_ERR_CLOSED' })
      await before
      await closed
      await store.close()
      await expect(store.apply([])).rejects.toMatchObject({ code: 'STORE_ERR_CLOSED', name: 'StoreError' })
      expect(store.get('a')).toBe(1)
      expect(store.has('b')).toBe(false)
    })
  })
}
