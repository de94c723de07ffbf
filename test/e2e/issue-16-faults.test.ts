/**
 * Goal (issue 16): an application keeps working through the PKCS#11 library while an HSM of its
 * cluster is killed and while another HSM's links are cut through the fault proxy: every call
 * answers within the library's timeout, with success or a documented error (CKR_DEVICE_ERROR),
 * and every key whose creation was acknowledged exists afterwards and works.
 *
 * Method: a lab of one cluster of 3 HSMs (its control plane restarts a killed HSM). Two workers
 * (pkcs11js *Async calls, on libuv's threads) loop: make a token AES key with a label of its own,
 * sign with an RSA key, encrypt with an AES key made beforehand. The test SIGKILLs hsm-1 while they
 * run, waits for more calls, waits until the control plane restarted it, then partitions hsm-2
 * (`hsmlab fault partition`: cut from its clients and peers), waits for more calls, heals, and
 * stops the workers. Last, every acknowledged label is found by C_FindObjects and its key
 * encrypts, several times in a row (the daemon balances over the HSMs, so each HSM answers).
 */
import * as pkcs11js from 'pkcs11js'
import { describe, expect, it, onTestFinished } from 'vitest'
import { waitFor } from '@hsmlab/testing'
import { fault } from './regions-helpers.js'
import { ALICE_PIN, startPkcs11Lab } from './pkcs11-helpers.js'

const TIMEOUT_MS = 8_000
const CKR_DEVICE_ERROR = 0x30
const topology = {
  regions: [{ name: 'us-east-1', clusters: [{ name: 'apps', hsms: 3, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'alice', password: 'Alice1234' }] }] }]
}

interface Outcome { op: string, code: number, ms: number }

describe('issue 16: an application through HSM loss and cut links', () => {
  it('answers every call and loses no acknowledged key', async () => {
    const { lab, client } = await startPkcs11Lab([], topology)
    Object.assign(process.env, client.env, { HSMLAB_PKCS11_TIMEOUT_MS: String(TIMEOUT_MS) })
    const p11 = new pkcs11js.PKCS11()
    p11.load(client.pkcs11Module)
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
    onTestFinished(() => { p11.C_Finalize(); p11.close() })
    const slot = p11.C_GetSlotList(true)[0] as Buffer
    const setup = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
    p11.C_Login(setup, pkcs11js.CKU_USER, ALICE_PIN)
    const rsa = p11.C_GenerateKeyPair(setup, { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_MODULUS_BITS, value: 2048 }],
      [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_SIGN, value: true }])
    const aes = p11.C_GenerateKey(setup, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_VALUE_LEN, value: 32 }])

    const outcomes: Outcome[] = []
    const acknowledged = new Map<string, Buffer>()
    let stop = false
    const timed = async (op: string, call: () => Promise<unknown>): Promise<unknown> => {
      const started = Date.now()
      try {
        const value = await call()
        outcomes.push({ op, code: 0, ms: Date.now() - started })
        return value
      } catch (err) {
        outcomes.push({ op, code: (err as { code?: number }).code ?? -1, ms: Date.now() - started })
        return undefined
      }
    }
    const worker = async (w: number): Promise<void> => {
      const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
      for (let n = 0; !stop; n++) {
        const label = `w${w}-${n}`
        const key = await timed('generate', async () => await p11.C_GenerateKeyAsync(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN },
          [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_VALUE_LEN, value: 16 }, { type: pkcs11js.CKA_LABEL, value: label }]))
        if (key instanceof Buffer) acknowledged.set(label, key)
        p11.C_SignInit(session, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, rsa.privateKey)
        await timed('sign', async () => await p11.C_SignAsync(session, Buffer.from(label), Buffer.alloc(256)))
        p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_ECB }, aes)
        await timed('encrypt', async () => await p11.C_EncryptAsync(session, Buffer.alloc(16), Buffer.alloc(16)))
      }
      p11.C_CloseSession(session)
    }
    const workers = Promise.all([worker(0), worker(1)])
    const moreCalls = async (count: number): Promise<void> => {
      const target = outcomes.length + count
      await waitFor(() => outcomes.length >= target, { timeoutMs: 60_000, what: `${count} more calls` })
    }

    await moreCalls(20)
    const status = await lab.statusJson()
    const hsms = status.regions[0]?.clusters[0]?.hsms ?? []
    const victim = hsms[1]
    if (victim?.pid == null) throw new Error('hsm-1 has no pid')
    process.kill(victim.pid, 'SIGKILL')
    await moreCalls(30)
    await waitFor(async () => {
      const now = (await lab.statusJson()).regions[0]?.clusters[0]?.hsms[1]
      return now?.state === 'ACTIVE' && now.pid !== victim.pid
    }, { timeoutMs: 60_000, what: 'hsm-1 restarted by its control plane' })
    await moreCalls(20)
    await fault(lab, ['partition', 'us-east-1/apps/hsm-2'])
    await moreCalls(30)
    await fault(lab, ['heal'])
    await moreCalls(20)
    stop = true
    await workers

    // Every call answered, in time, with success or CKR_DEVICE_ERROR.
    const unexpected = outcomes.filter(o => o.code !== 0 && o.code !== CKR_DEVICE_ERROR)
    expect(unexpected).toEqual([])
    expect(Math.max(...outcomes.map(o => o.ms))).toBeLessThan(TIMEOUT_MS + 2_000)
    expect(outcomes.filter(o => o.code === 0).length).toBeGreaterThan(outcomes.length / 2)

    // Nothing acknowledged is lost: each label found, and its key works, on whichever HSM answers.
    expect(acknowledged.size).toBeGreaterThan(10)
    const check = (): boolean => {
      for (const [label, handle] of acknowledged) {
        p11.C_FindObjectsInit(setup, [{ type: pkcs11js.CKA_LABEL, value: label }])
        const found = p11.C_FindObjects(setup, 10)
        p11.C_FindObjectsFinal(setup)
        if (found.length !== 1 || !(found[0] as Buffer).equals(handle)) return false
        p11.C_EncryptInit(setup, { mechanism: pkcs11js.CKM_AES_ECB }, handle)
        p11.C_Encrypt(setup, Buffer.alloc(16), Buffer.alloc(16))
      }
      return true
    }
    await waitFor(() => check() && check() && check(), { timeoutMs: 60_000, what: 'every acknowledged key found on every HSM' })
  })
})
