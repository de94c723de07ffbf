/**
 * Property (issue 9, §5): whatever a client sends to the control plane's API — any X-Amz-Target
 * (the operations, the names every object inherits, random text), any X-Amz-Region, any body
 * (JSON of any shape, JSON whose keys are inherited names, text that is not JSON) — the answer is
 * never a 500 and never an inherited member run as an operation: an unknown target answers 400
 * UnknownOperationException, and no answer carries a secret. A real control plane (in process, on
 * port 0) answers; the run is bounded to a few seconds.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { OPERATIONS } from '../src/index.js'
import { startTestControlPlane } from './helpers.js'

const INHERITED = [
  'constructor', '__proto__', 'hasOwnProperty', 'valueOf', 'toString', 'toLocaleString', 'isPrototypeOf',
  'propertyIsEnumerable', '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__'
]
const KNOWN = [...OPERATIONS.keys()] as string[]
const MEMBERS = ['ClusterId', 'Replicas', 'Scope', 'ReplicaClusterId', 'Confirm', 'BackupId', 'HsmId', 'Filters', 'TagList', 'TagKeyList', 'ResourceId', 'Routes', 'SubnetIds', 'HsmType',
  'DestinationRegion', 'SignedCert', 'TrustAnchor', 'NextToken', 'MaxResults', 'AvailabilityZone', 'NeverExpires', 'clusterIds', 'states']

const name = fc.oneof(fc.constantFrom(...INHERITED), fc.constantFrom(...KNOWN), fc.stringMatching(/^[A-Za-z0-9_$.:-]{0,24}$/))
const target = fc.oneof(
  { arbitrary: name.map(n => `BaldrApiService.${n}`), weight: 6 },
  { arbitrary: name, weight: 1 },
  { arbitrary: fc.constant(undefined), weight: 1 }
)
const region = fc.oneof({ arbitrary: fc.constant(undefined), weight: 4 }, { arbitrary: fc.constantFrom('us-east-1', ...INHERITED), weight: 1 })
const key = fc.oneof(fc.constantFrom(...INHERITED, ...MEMBERS), fc.string({ maxLength: 8 }))
// A JSON value whose object keys are mostly inherited names and API members.
const value: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>(tie => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null), fc.boolean(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string({ maxLength: 12 }),
    fc.constantFrom('cluster-abcdefghijk', 'backup-abcdefghijk', 'hsm-abcdefghijk', 'us-east-1a', 'hsm2m.medium'),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 5 })
  )
})).value
const body = fc.oneof(
  { arbitrary: fc.dictionary(key, value, { maxKeys: 6 }).map(o => JSON.stringify(o)), weight: 4 },
  // Written as text, so that a key `__proto__` is in the JSON as it is on the wire.
  { arbitrary: fc.dictionary(key, value, { maxKeys: 3 }).map(o => `{"__proto__": ${JSON.stringify(o)}, "constructor": {"prototype": 1}}`), weight: 1 },
  { arbitrary: value.map(v => JSON.stringify(v) ?? 'null'), weight: 1 },
  { arbitrary: fc.string({ maxLength: 40 }), weight: 1 },
  { arbitrary: fc.constant(''), weight: 1 }
)

describe('the control plane API under random requests', () => {
  it('never answers 500, never runs an inherited member, answers unknown targets with 400 UnknownOperationException', async () => {
    const cp = await startTestControlPlane('us-east-1')
    await fc.assert(fc.asyncProperty(target, region, body, async (target, region, body) => {
      const headers: Record<string, string> = { 'content-type': 'application/x-amz-json-1.1' }
      if (target !== undefined) headers['x-amz-target'] = target
      if (region !== undefined) headers['x-amz-region'] = region
      const response = await fetch(`${cp.url}/`, { method: 'POST', headers, body })
      const text = await response.text()
      expect(response.status, text).not.toBe(500)
      expect(text).not.toMatch(/anchorSecretKey|PRIVATE KEY|secretKey|"store"|"settings"/)
      const answer = JSON.parse(text) as { __type?: string }
      const operation = target?.startsWith('BaldrApiService.') === true ? target.slice('BaldrApiService.'.length) : undefined
      if ((region === undefined || region === 'us-east-1') && (operation === undefined || !KNOWN.includes(operation))) {
        expect({ status: response.status, type: answer.__type }).toEqual({ status: 400, type: 'UnknownOperationException' })
      }
      if (response.status === 200) expect(operation !== undefined && KNOWN.includes(operation)).toBe(true)
    }), { numRuns: 400, interruptAfterTimeLimit: 5_000 })
  })

  it('answers malformed requests on the internal paths of other regions with 4xx, never 500', async () => {
    const cp = await startTestControlPlane('us-east-1')
    const copyRequest = fc.record({
      requestId: fc.oneof(fc.string({ maxLength: 8 }), value), sourceRegion: fc.oneof(fc.constantFrom('us-west-2', ...INHERITED), value),
      sourceBackup: fc.oneof(fc.constant('backup-abcdefghijk'), value), createdAtMs: fc.oneof(fc.integer(), value), hsmType: fc.oneof(fc.string(), value),
      tags: fc.oneof(fc.array(value, { maxLength: 3 }), value), nextSlot: fc.oneof(fc.integer(), value), mode: value
    }, { requiredKeys: [] })
    await fc.assert(fc.asyncProperty(copyRequest, async (copy) => {
      const response = await fetch(`${cp.url}/_hsmlab/copies`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(copy) })
      expect(response.status, await response.text()).toBeLessThan(500)
    }), { numRuns: 200, interruptAfterTimeLimit: 3_000 })
    const fixed: Array<[string, string, string?]> = [
      ['POST', '/_hsmlab/copies', JSON.stringify({ requestId: 'r', sourceRegion: 'us-west-2', sourceBackup: 'backup-abcdefghijk', createdAtMs: 1, hsmType: 'hsm2m.medium', tags: [null], nextSlot: 0 })],
      ['GET', '/_hsmlab/copies/%E0%A4%A'], ['POST', '/_hsmlab/copies/%/cancel', ''], ['GET', '/_hsmlab/copies/constructor'],
      ['POST', '/_hsmlab/copies/__proto__/cancel', ''], ['GET', '/_hsmlab/backups/backup-abcdefghijk?copy=constructor'], ['GET', '/_hsmlab/__proto__']
    ]
    for (const [method, path, body] of fixed) {
      const response = await fetch(`${cp.url}${path}`, { method, ...(body === undefined ? {} : { body }) })
      expect(response.status, `${method} ${path}: ${await response.text()}`).toBeLessThan(500)
    }

    // The synchronisation paths (issue 12): bodies of any shape, with ids of clusters this region does not have.
    const clusterId = fc.oneof(fc.constantFrom('cluster-abcdefghijk', 'cluster-zzzzzzzzzzz', ...INHERITED), value)
    const syncBody = fc.record({
      primaryClusterId: clusterId, replicaClusterId: clusterId, primaryRegion: fc.oneof(fc.constantFrom('us-west-2', ...INHERITED), value),
      lineage: value, check: fc.oneof(fc.boolean(), value), syncType: fc.oneof(fc.constantFrom('KEYS', 'KEYS_AND_USERS'), value),
      objects: fc.oneof(fc.array(fc.oneof(fc.base64String({ maxLength: 12 }), value), { maxLength: 3 }), value),
      deleteKeys: fc.oneof(fc.array(fc.oneof(fc.nat(), value), { maxLength: 3 }), value), deleteUsers: fc.oneof(fc.array(value, { maxLength: 3 }), value)
    }, { requiredKeys: [] })
    const syncPath = fc.constantFrom('inventory', 'associate', 'disassociate', 'apply')
    await fc.assert(fc.asyncProperty(syncPath, syncBody, async (path, body) => {
      const response = await fetch(`${cp.url}/_hsmlab/sync/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      expect(response.status, await response.text()).toBeLessThan(500)
    }), { numRuns: 200, interruptAfterTimeLimit: 3_000 })
  })
})
