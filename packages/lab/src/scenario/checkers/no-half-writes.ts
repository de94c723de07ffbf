/**
 * Invariant `no-half-writes`: whatever of the run is there is whole. Every key of the run that an
 * HSM lists can be read (getKeyInfo, getAttribute), is the AES key of the size it was created
 * with, and has the same key check value on every HSM of every cluster that holds it (a synced
 * copy is the same key); every user of the run that an HSM lists can log in there with its
 * password, including users synced to another cluster.
 */
import { KeyType } from '@hsmlab/protocol'
import type { CheckInput, Violation } from './check-input.js'

export const NO_HALF_WRITES = 'no-half-writes' as const

export function checkNoHalfWrites ({ history, observation }: CheckInput): Violation[] {
  const out: Violation[] = []
  const fail = (detail: string): void => { out.push({ invariant: NO_HALF_WRITES, detail }) }
  const created = new Map(history.filter(r => r.op === 'createKey' && r.label !== undefined).map(r => [r.label ?? '', r]))
  const kcvs = new Map<string, Map<string, string[]>>()
  for (const hsm of observation.hsms) {
    if (hsm.unreachable !== undefined) continue
    for (const key of hsm.keys) {
      if (key.unreadable !== undefined) {
        fail(`handle ${key.handle} on ${hsm.name} is listed by findAllKeys but cannot be read: ${key.unreadable}`)
        continue
      }
      const record = key.label === undefined ? undefined : created.get(key.label)
      if (record === undefined) continue
      if (key.keyType !== KeyType.AES) fail(`key ${key.label ?? ''} (handle ${key.handle}) on ${hsm.name} has key type ${String(key.keyType)}, not AES (${KeyType.AES})`)
      if (record.sizeBytes !== undefined && key.valueLen !== record.sizeBytes) fail(`key ${key.label ?? ''} (handle ${key.handle}) on ${hsm.name} is ${String(key.valueLen)} bytes long, not ${record.sizeBytes}`)
      if (key.kcv === undefined) fail(`key ${key.label ?? ''} (handle ${key.handle}) on ${hsm.name} has no key check value`)
      else {
        const byKcv = kcvs.get(key.label ?? '') ?? new Map<string, string[]>()
        byKcv.set(key.kcv, [...(byKcv.get(key.kcv) ?? []), hsm.name])
        kcvs.set(key.label ?? '', byKcv)
      }
    }
    for (const login of hsm.logins) {
      if (!login.ok) fail(`user ${login.userName} is on ${hsm.name} but cannot log in with its password: ${login.cause ?? 'no cause'}`)
    }
  }
  for (const [label, byKcv] of kcvs) {
    if (byKcv.size > 1) fail(`key ${label} is not the same key everywhere: ${[...byKcv].map(([kcv, on]) => `KCV ${kcv} on ${on.join(', ')}`).join('; ')}`)
  }
  return out
}
