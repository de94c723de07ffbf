/**
 * The key table on its own, over an in-memory store: per-handle locks (one task at a time per
 * handle, all of a task's locks at once), reservations (the key limit with creations in flight,
 * IDs, handles given out), handles never given out twice, and copies from peers that never
 * overwrite a key or a tombstone.
 */
import { describe, expect, it } from 'vitest'
import { ReturnCode, WireError } from '@hsmlab/protocol'
import { memoryStore } from '@hsmlab/store'
import type { KeyRecord, KeyTombstone } from '../src/context.js'
import { KeyTable } from '../src/key-table.js'

function record (handle: number): KeyRecord {
  return { handle, keyClass: 4, keyType: 31, owner: 3, sharedWith: [], mValue: 0, attributes: { 1: 1 }, material: new Uint8Array(16) }
}

function table (options: { keysMax?: number, sessionKeys?: number[], handles?: number[], reservedHandlesMax?: number } = {}): { keys: KeyTable, store: ReturnType<typeof memoryStore<KeyRecord | KeyTombstone>> } {
  const store = memoryStore<KeyRecord | KeyTombstone>()
  const handles = [...(options.handles ?? [10, 11, 12, 13, 14, 15, 16, 17, 18, 19])]
  const sessions = new Set([{ sessionKeys: new Map((options.sessionKeys ?? []).map(h => [h, record(h)])) }])
  const keys = new KeyTable({
    store,
    nextHandle: () => handles.shift() ?? 999,
    keysMax: options.keysMax ?? 100,
    sessions,
    ...(options.reservedHandlesMax === undefined ? {} : { reservedHandlesMax: options.reservedHandlesMax })
  })
  return { keys, store }
}

function expectKeyLimit (fn: () => unknown): void {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(WireError)
    expect((err as WireError).code).toBe(ReturnCode.KEY_LIMIT.name)
    return
  }
  throw new Error('expected RET_KEY_LIMIT')
}

describe('KeyTable', () => {
  it('runs one task at a time per handle, takes all of a task\'s locks at once, and lets other handles run', async () => {
    const { keys } = table()
    const order: string[] = []
    let releaseFirst!: () => void
    const first = keys.withLocks([1], async () => {
      order.push('first start')
      await new Promise<void>(resolve => { releaseFirst = resolve })
      order.push('first end')
    })
    const both = keys.withLocks([2, 1], async () => { order.push('both') })
    const other = keys.withLocks([3], async () => { order.push('other') })
    await other
    expect(order).toEqual(['first start', 'other'])
    // The task on 2 and 1 holds 2 while it waits for 1: a task on 2 alone queues behind it.
    const two = keys.withLocks([2], async () => { order.push('two') })
    expect(keys.inUse(2)).toBe(true)
    releaseFirst()
    await Promise.all([first, both, two])
    expect(order).toEqual(['first start', 'other', 'first end', 'both', 'two'])
    expect(keys.inUse(1)).toBe(false)
    // A failing task releases its locks too.
    await expect(keys.withLocks([1], async () => { throw new Error('boom') })).rejects.toThrow('boom')
    expect(await keys.withLocks([1], async () => 'after')).toBe('after')
  })

  it('counts the places creations in flight reserved against the key limit, until they are released', async () => {
    const { keys } = table({ keysMax: 3 })
    await keys.put([record(1)])
    await keys.tombstone([2]) // tombstones do not count
    expect(keys.liveCount()).toBe(1)
    const release = keys.reserveSlots(2)
    expectKeyLimit(() => keys.reserveSlots(1))
    release()
    release() // twice changes nothing
    keys.reserveSlots(2)()
    expectKeyLimit(() => { keys.checkLimit(3) })
  })

  it('reserves IDs until released', () => {
    const { keys } = table()
    const release = keys.reserveId('same')
    expect(keys.isIdReserved('same')).toBe(true)
    release()
    expect(keys.isIdReserved('same')).toBe(false)
  })

  it('gives out handles nothing holds: not stored, not a tombstone, not a session key, not locked, not given out already', async () => {
    const { keys } = table({ handles: [10, 11, 12, 13, 14, 15, 16], sessionKeys: [12] })
    await keys.put([record(10)])
    await keys.tombstone([11])
    let unlock!: () => void
    const gate = new Promise<void>(resolve => { unlock = resolve })
    const held = keys.withLocks([13], async () => { await gate })
    expect(keys.allocate()).toBe(14)
    expect(keys.inUse(14)).toBe(true) // given out, not yet stored
    expect(keys.inUse(13, true)).toBe(false) // the lock's holder may take it
    expect(keys.allocate()).toBe(15)
    keys.release([14, 15])
    expect(keys.inUse(14)).toBe(false)
    unlock()
    await held
  })

  it('forgets handles long stored once too many are remembered', async () => {
    const { keys } = table({ handles: [10, 11, 12], reservedHandlesMax: 2 })
    expect(keys.allocate()).toBe(10)
    expect(keys.allocate()).toBe(11)
    await keys.put([record(10)])
    expect(keys.allocate()).toBe(12)
    expect(keys.inUse(11)).toBe(true) // still remembered: not stored
  })

  it('stores a copy from a peer only where nothing is, and tombstones deletes once', async () => {
    const { keys, store } = table()
    expect(await keys.insertCopy(record(5))).toBe(true)
    const changed = { ...record(5), owner: 4 }
    expect(await keys.insertCopy(changed)).toBe(false)
    expect(keys.live(5)?.owner).toBe(3)
    expect(await keys.tombstoneCopies([5, 6])).toBe(2)
    expect(await keys.tombstoneCopies([5, 6])).toBe(0)
    expect(await keys.tombstoneCopies([])).toBe(0)
    expect(await keys.insertCopy(record(6))).toBe(false) // deleted here: a tombstone wins
    expect(keys.live(5)).toBeUndefined()
    expect(keys.get(6)).toEqual({ handle: 6, deleted: true })
    expect(store.get('6')).toEqual({ handle: 6, deleted: true })
    expect([...keys.values()].map(r => r.handle)).toEqual([5, 6])
  })
})
