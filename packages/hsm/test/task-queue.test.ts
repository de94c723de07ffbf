// The queue behind user changes (one at a time) and pushes to a peer (a few at a time).
import { describe, expect, it } from 'vitest'
import { TaskQueue } from '../src/task-queue.js'

function deferred (): { promise: Promise<void>, resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>(r => { resolve = r })
  return { promise, resolve }
}

describe('TaskQueue', () => {
  it('runs at most `concurrency` tasks, in the order they were added', async () => {
    const queue = new TaskQueue(2)
    const gates = [deferred(), deferred(), deferred(), deferred()]
    const started: number[] = []
    const done = gates.map(async (gate, i) => await queue.add(async () => { started.push(i); await gate.promise; return i }))
    await Promise.resolve()
    expect(started).toEqual([0, 1])
    expect(queue.size).toBe(2)
    gates[1]!.resolve()
    await done[1]
    expect(started).toEqual([0, 1, 2])
    expect(queue.size).toBe(1)
    // A task added now waits behind the one already waiting.
    const late = queue.add(async () => { started.push(4); return 4 })
    gates[0]!.resolve()
    await done[0]
    expect(started).toEqual([0, 1, 2, 3])
    gates[2]!.resolve()
    gates[3]!.resolve()
    expect(await Promise.all([...done, late])).toEqual([0, 1, 2, 3, 4])
    expect(started).toEqual([0, 1, 2, 3, 4])
    expect(queue.size).toBe(0)
  })

  it('passes a failure to its caller and frees the slot', async () => {
    const queue = new TaskQueue(1)
    await expect(queue.add(async () => { throw new Error('boom') })).rejects.toThrow('boom')
    expect(await queue.add(async () => 'next')).toBe('next')
  })

  it('refuses a concurrency below one', () => {
    expect(() => new TaskQueue(0)).toThrow(RangeError)
  })
})
