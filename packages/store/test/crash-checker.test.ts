// The crash checker must catch what it is there to catch, or a passing crash test means nothing.
import { describe, expect, it } from 'vitest'
import { checkCrashedStore, parseAcks } from './crash-checker.js'

const put = (batch: string, size: number, i: number): [string, unknown] => [`${batch}:${i}`, { batch, size, i }]

describe('checkCrashedStore', () => {
  const acks = parseAcks('ready 0\nack 0:0 2 0\nack 0:1 1 1\nack 0:2 1 0\nack 0:3 2')
  it('parses complete ack lines only', () => {
    expect(acks.map(a => a.batch)).toEqual(['0:0', '0:1', '0:2'])
  })

  it('passes a store that kept its promises, unacknowledged batches included', () => {
    const entries = [put('0:0', 2, 0), put('0:0', 2, 1), put('0:1', 1, 0), put('0:2', 1, 0), put('0:4', 1, 0),
      ['0:w0', { batch: '0:4' }], ['0:w1', { batch: '0:1' }]] as Array<[string, unknown]>
    expect(checkCrashedStore(entries, acks)).toEqual([])
  })

  it('catches a missing acknowledged batch, a half batch and a pointer gone back', () => {
    const entries = [put('0:0', 2, 0), put('0:2', 1, 0), put('0:5', 3, 0), put('0:5', 3, 2),
      ['0:w0', { batch: '0:0' }]] as Array<[string, unknown]>
    expect(checkCrashedStore(entries, acks)).toEqual([
      'batch 0:0 is half there: 1 of 2 ids',
      'batch 0:5 is half there: 2 of 3 ids',
      'acknowledged batch 0:0 has 1 of 2 ids',
      'acknowledged batch 0:1 is missing',
      'pointer 0:w0 names batch 0:0, older than acknowledged batch 0:2',
      'pointer 0:w1 is missing though its writer was acknowledged'
    ])
  })
})
