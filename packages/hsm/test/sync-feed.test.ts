/**
 * The change sequence of syncChanges (sync-feed.ts), in memory, against a model.
 *
 * Goal: `since(s)` gives exactly the resources changed after change s, each once, in the order of
 * their last change, while every change after s is still retained; once some are not (the window
 * of `retainedMax` moved past them), or s is beyond the last change, it says so (undefined: the
 * caller gets a full answer). A long poll wakes on a change and on close. Method: fast-check
 * runs random histories (bounded to a few seconds) and compares with a plain list.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { SyncChangeFeed } from '../src/sync-feed.js'
import type { ResourceRef } from '../src/sync-feed.js'

const RUN_LIMIT = { numRuns: 300, interruptAfterTimeLimit: 3_000 }

const ref = fc.oneof(
  fc.integer({ min: 6, max: 12 }).map((handle): ResourceRef => ({ kind: 'key', handle, owner: 'alice' })),
  fc.constantFrom('alice', 'Alice', 'bob').map((name): ResourceRef => ({ kind: 'user', name, userType: 'CU' }))
)

function id (r: ResourceRef): string {
  return r.kind === 'key' ? `k${r.handle}` : `u${r.name.toLowerCase()}`
}

describe('SyncChangeFeed', () => {
  it('answers what changed after a point while it is retained, and undefined once it is not', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 8 }), fc.array(fc.array(ref, { maxLength: 4 }), { maxLength: 12 }), (retainedMax, batches) => {
      const feed = new SyncChangeFeed(retainedMax)
      const all: ResourceRef[] = []
      for (const batch of batches) {
        feed.record(batch)
        all.push(...batch)
      }
      expect(feed.seq).toBe(all.length)
      for (let since = 0; since <= all.length + 1; since++) {
        const answer = feed.since(since)
        const retained = since >= all.length - retainedMax && since <= all.length
        if (!retained) {
          expect(answer, `since ${since}`).toBeUndefined()
          continue
        }
        const expected = new Map<string, ResourceRef>()
        for (const r of all.slice(since)) { expected.delete(id(r)); expected.set(id(r), r) }
        expect(answer, `since ${since}`).toEqual([...expected.values()])
      }
    }), RUN_LIMIT)
  })

  it('wakes a long poll when a change is recorded, and every poll when closed', async () => {
    const feed = new SyncChangeFeed(16)
    const woken = feed.wait(60_000)
    feed.record([{ kind: 'key', handle: 6, owner: 'alice' }])
    await woken
    expect(feed.since(0)).toHaveLength(1)
    const pending = feed.wait(60_000)
    feed.close()
    await pending
    // Closed: no more waiting at all.
    await feed.wait(60_000)
    expect(feed.epoch).toMatch(/^epoch-[0-9a-f]{24}$/)
    expect(new SyncChangeFeed(1).epoch).not.toBe(feed.epoch)
  })
})
