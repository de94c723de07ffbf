// Unit tests of the parts without processes: request validation, SigV4, regions and requests to
// them, the state store, the lab clock, the X.509 checks of InitializeCluster, and the error codes
// kept in step with docs/errors.md.
import { execFileSync } from 'node:child_process'
import { createHash, createPublicKey, randomBytes } from 'node:crypto'
import { appendFileSync, chmodSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { tmpDir, waitFor } from '@hsmlab/testing'
import * as cp from '../src/index.js'
import { LabClock } from '../src/clock.js'
import { violations, requestShapes } from '../src/validation.js'
import { certificationRequest, p256KeyFromSeed, x509Name } from '@hsmlab/crypto'
import { SyncOutcomeCode } from '@hsmlab/hsm'
import { checkSignedCertificate } from '../src/x509.js'
import { copyRefusal } from '../src/copy-protocol.js'
import { BackupFiles } from '../src/backup-files.js'
import { CopyReconciler } from '../src/reconcilers/copies.js'
import { sendRegionRequest } from '../src/regions.js'
import { StateStore } from '../src/state-store.js'
import type { ClusterRecord, ControlPlaneState } from '../src/state-store.js'
import { startFailureReason } from '../src/hsm-supervisor.js'
import { REGION_OCTETS, regionOctet } from '../src/api/hsms.js'

describe('validation', () => {
  it('words violations the way AWS request validation does', () => {
    expect(violations({ ClusterId: 'nope' }, requestShapes.DeleteCluster)).toEqual([
      "Value 'nope' at 'clusterId' failed to satisfy constraint: Member must satisfy regular expression pattern: cluster-[2-7a-zA-Z]{11,16}"
    ])
    expect(violations({}, requestShapes.CreateCluster)).toEqual([
      "Value null at 'hsmType' failed to satisfy constraint: Member must not be null",
      "Value null at 'subnetIds' failed to satisfy constraint: Member must not be null"
    ])
    expect(violations({ HsmType: 'hsm2m.medium', SubnetIds: ['subnet-1'] }, requestShapes.CreateCluster)[0]).toMatch(/at 'subnetIds.1.member'/)
    expect(violations({ MaxResults: 26 }, requestShapes.DescribeClusters)[0]).toMatch(/less than or equal to 25/)
    expect(violations({ ResourceId: 'cluster-abcdefghijk', TagList: [{ Key: 'a', Value: 'b' }] }, requestShapes.TagResource)).toEqual([])
    expect(violations({ ResourceId: 'hsm-abcdefghijk', TagList: [] }, requestShapes.TagResource)).toHaveLength(2)
    expect(violations({ SourceBackupId: 'arn:aws:cloudhsm:us-east-1:111122223333:backup/backup-abcdefghijk', HsmType: 'hsm1.medium', SubnetIds: ['subnet-0123abcd'] }, requestShapes.CreateCluster)).toEqual([])
  })
})

describe('sigv4', () => {
  it('verifies what it signs, and refuses a changed body, another secret or an unknown key', () => {
    const credentials = { accessKeyId: 'AKID', secretAccessKey: 'secret' }
    const url = new URL('http://127.0.0.1:1234/')
    const body = '{"Filters":{}}'
    const headers = cp.signRequest({ method: 'POST', url, headers: { 'x-amz-target': 'BaldrApiService.DescribeClusters' }, body, region: 'us-west-2', credentials })
    const rawHeaders = Object.entries(headers).flat()
    const req = { method: 'POST', url: '/', rawHeaders, body: Buffer.from(body) }
    expect(cp.verifyRequest(req, credentials, { skewMs: 60_000 }).region).toBe('us-west-2')
    expect(() => cp.verifyRequest({ ...req, body: Buffer.from('{}') }, credentials, { skewMs: 60_000 })).toThrow(expect.objectContaining({ type: 'InvalidSignatureException' }))
    expect(() => cp.verifyRequest(req, { ...credentials, secretAccessKey: 'other' }, { skewMs: 60_000 })).toThrow(expect.objectContaining({ type: 'InvalidSignatureException' }))
    expect(() => cp.verifyRequest(req, { ...credentials, accessKeyId: 'OTHER' }, { skewMs: 60_000 })).toThrow(expect.objectContaining({ type: 'UnrecognizedClientException' }))
    expect(() => cp.verifyRequest({ ...req, rawHeaders: [] }, credentials, { skewMs: 60_000 })).toThrow(expect.objectContaining({ type: 'MissingAuthenticationTokenException' }))
    expect(() => cp.verifyRequest(req, credentials, { skewMs: 60_000, now: Date.now() + 3_600_000 })).toThrow(/Signature expired/)
  })
})

describe('peer secret', () => {
  it('is made once with mode 0600, and read only from a file nobody else can read that holds a long enough secret', async () => {
    const dir = tmpDir('hsmlab-cp-peer-')
    const file = join(dir, 'peer.secret')
    expect(await cp.ensurePeerSecretFile(file)).toBe(true)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    const made = readFileSync(file, 'utf8')
    expect(await cp.ensurePeerSecretFile(file)).toBe(false)
    expect(readFileSync(file, 'utf8')).toBe(made)
    expect(await cp.readPeerSecretFile(file)).toEqual({ accessKeyId: cp.PEER_ACCESS_KEY_ID, secretAccessKey: made.trim() })
    const refused = async (content: string, mode: number): Promise<string> => {
      const other = join(dir, `secret-${mode}-${content.length}`)
      writeFileSync(other, content, { mode })
      chmodSync(other, mode)
      const err = await cp.readPeerSecretFile(other).then(() => undefined, (e: unknown) => e as { code?: string, message: string })
      expect(err?.code).toBe(cp.CP_ERR_PEER_SECRET)
      expect(err?.message).not.toContain(content.trim() === '' ? '\0' : content.trim())
      return err?.message ?? ''
    }
    expect(await refused(made, 0o644)).toMatch(/can be read by others \(mode 644\)/)
    expect(await refused('short-secret\n', 0o600)).toMatch(/at least 32 printable characters/)
    expect(await refused('', 0o600)).toMatch(/at least 32/)
    const missing = await cp.readPeerSecretFile(join(dir, 'none')).then(() => undefined, (e: unknown) => e as { code?: string })
    expect(missing?.code).toBe(cp.CP_ERR_PEER_SECRET)
  })
})

describe('regions and copies', () => {
  it('refuses copies between restricted and standard regions, allows GovCloud East ↔ West', () => {
    expect(copyRefusal('us-east-1', 'us-west-2')).toBeUndefined()
    expect(copyRefusal('us-gov-east-1', 'us-gov-west-1')).toBeUndefined()
    expect(copyRefusal('us-east-1', 'us-gov-west-1')).toMatch(/restricted regions and standard regions/)
    expect(copyRefusal('us-iso-east-1', 'us-east-1')).toMatch(/restricted/)
    expect(copyRefusal('us-east-1', 'us-east-1')).toMatch(/own region/)
    expect(cp.partitionOf('us-gov-west-1')).toBe('aws-us-gov')
  })

  it('reads a regions file and reports a malformed one with CP_ERR_REGIONS_FILE', async () => {
    const dir = tmpDir()
    const file = join(dir, 'regions.json')
    writeFileSync(file, '{"us-west-2": "http://127.0.0.1:9/"}')
    expect(await cp.readRegionsFile(file)).toEqual({ 'us-west-2': 'http://127.0.0.1:9' })
    expect(await cp.readRegionsFile(join(dir, 'missing.json'))).toEqual({})
    writeFileSync(file, '["x"]')
    await expect(cp.readRegionsFile(file)).rejects.toMatchObject({ code: 'CP_ERR_REGIONS_FILE' })
  })

  it('reads a whole answer of another region, and rejects one cut short or too late', async () => {
    const bytes = randomBytes(1 << 20)
    const server = createServer((req, res) => {
      if (req.url === '/whole') {
        res.writeHead(200, { 'content-length': bytes.length, 'x-hsmlab-sha256': 'abc' })
        res.end(bytes)
      } else if (req.url === '/cut') {
        res.writeHead(200, { 'content-length': bytes.length })
        res.write(bytes.subarray(0, 1000), () => { res.destroy() })
      } else if (req.url === '/echo') {
        req.pipe(res)
      }
      // Any other path is never answered.
    })
    onTestFinished(() => { server.closeAllConnections(); server.close() })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const whole = await sendRegionRequest(new URL('/whole', base), { method: 'GET', headers: {}, timeoutMs: 5_000 })
    expect(whole.status).toBe(200)
    expect(whole.headers['x-hsmlab-sha256']).toBe('abc')
    expect(whole.body.equals(bytes)).toBe(true)
    // A body that names its SHA-256 is hashed as it arrives, for the caller to compare.
    expect(whole.bodySha256).toBe(createHash('sha256').update(bytes).digest('hex'))
    const echo = await sendRegionRequest(new URL('/echo', base), { method: 'POST', headers: {}, body: '{"é":1}', timeoutMs: 5_000 })
    expect(echo.body.toString('utf8')).toBe('{"é":1}')
    expect(echo.bodySha256).toBeUndefined()
    await expect(sendRegionRequest(new URL('/cut', base), { method: 'GET', headers: {}, timeoutMs: 5_000 })).rejects.toThrow()
    await expect(sendRegionRequest(new URL('/never', base), { method: 'GET', headers: {}, timeoutMs: 100 })).rejects.toThrow(/no answer within 100 ms/)
  })

  it('sends a request again, once, when the kept-alive connection it went out on is reset before any answer', async () => {
    // The server closing an idle kept-alive connection just as a request is written on it (the
    // global agent reuses it): here every second request on a connection is met with a reset.
    const received: string[] = []
    const server = createNetServer(socket => {
      let requests = 0
      socket.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString('latin1').split('\r\n')) if (/^(GET|POST) /.test(line)) { requests++; received.push(line) }
        if (requests >= 2) { socket.resetAndDestroy(); return }
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\n\r\nok')
      })
    })
    onTestFinished(() => { server.close() })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    expect((await sendRegionRequest(new URL('/first', base), { method: 'POST', headers: {}, body: '{}', timeoutMs: 5_000 })).body.toString()).toBe('ok')
    expect((await sendRegionRequest(new URL('/second', base), { method: 'POST', headers: {}, body: '{}', timeoutMs: 5_000 })).body.toString()).toBe('ok')
    expect(received).toEqual(['POST /first HTTP/1.1', 'POST /second HTTP/1.1', 'POST /second HTTP/1.1'])
  })

  it('serves the bytes of a backup, hashed again only when its file changed, and 422 once they no longer match', async () => {
    const dir = tmpDir()
    const store = await StateStore.open(dir, 'us-east-1', '111122223333')
    const bytes = randomBytes(64 * 1024)
    const files = new BackupFiles(dir)
    const { file, sha256 } = await files.store('backup-abcdefghijk', bytes)
    await store.transact(draft => {
      draft.backups['backup-abcdefghijk'] = { backupId: 'backup-abcdefghijk', state: 'READY', createdAtMs: 0, neverExpires: false, tags: [], hsmType: 'hsm2m.medium', reason: 'requested', nextSlot: 1, file, sha256 }
    })
    const copies = new CopyReconciler({ store, files, region: 'us-east-1' } as unknown as ConstructorParameters<typeof CopyReconciler>[0])
    const get = async (): Promise<{ status: number, body: unknown, sha256?: string }> => copies.bytes('backup-abcdefghijk')
    const answer = await get()
    expect(answer.status).toBe(200)
    expect(Buffer.from(answer.body as Uint8Array).equals(bytes)).toBe(true)
    expect(answer.sha256).toBe(sha256)
    // One byte changed by an ordinary write (its mtime and ctime change): hashed again, refused.
    const changed = Buffer.from(bytes)
    changed[100] = (changed[100] ?? 0) ^ 1
    await new Promise(resolve => setTimeout(resolve, 20))
    writeFileSync(join(dir, file), changed)
    expect((await get()).status).toBe(422)
    expect((await get()).status).toBe(422)
    // Put back as it was made: served again.
    writeFileSync(join(dir, file), bytes)
    expect((await get()).status).toBe(200)
    expect((await get()).status).toBe(200)
  })
})

describe('state store', () => {
  it('writes nothing for a change that changes nothing, and writes every real change', async () => {
    const dir = tmpDir()
    const store = await StateStore.open(dir, 'us-east-1', '111122223333')
    const inode = (): number => statSync(store.file).ino
    const before = inode()
    // The reconcilers' passes mostly find nothing to do: no write (two fsyncs) for those.
    await store.transact(draft => { draft.clusters.a = {} as ClusterRecord; delete draft.clusters.a })
    expect(inode()).toBe(before)
    await store.transact(draft => { draft.clusters.b = {} as ClusterRecord })
    expect(inode()).not.toBe(before)
    expect(Object.keys((JSON.parse(readFileSync(store.file, 'utf8')) as ControlPlaneState).clusters)).toEqual(['b'])
  })

  it('makes a change that waits for another write durable and current only after it, and not at all when it fails', async () => {
    const dir = tmpDir()
    const store = await StateStore.open(dir, 'us-east-1', '111122223333')
    const onDisk = (): unknown => Object.keys((JSON.parse(readFileSync(store.file, 'utf8')) as ControlPlaneState).clusters)
    let release = (): void => {}
    const written = new Promise<void>(resolve => { release = resolve })
    const change = store.transact(draft => { draft.clusters.a = {} as ClusterRecord }, { after: written })
    // The new state is written beside the file, and waits there.
    await waitFor(() => readdirSync(dir).some(f => f.includes('.tmp-')))
    expect(onDisk()).toEqual([])
    expect(Object.keys(store.state.clusters)).toEqual([])
    release()
    await change
    expect(onDisk()).toEqual(['a'])
    expect(Object.keys(store.state.clusters)).toEqual(['a'])

    const failed = Promise.reject(new Error('disk full'))
    await expect(store.transact(draft => { draft.clusters.b = {} as ClusterRecord }, { after: failed })).rejects.toThrow('disk full')
    expect(onDisk()).toEqual(['a'])
    expect(Object.keys(store.state.clusters)).toEqual(['a'])
    expect(readdirSync(dir).filter(f => f.includes('.tmp-'))).toEqual([])
  })
})

describe('HSM addresses', () => {
  it('gives every region its own second octet: the table first, a stable hash onto the rest otherwise', () => {
    expect(['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2'].map(regionOctet)).toEqual([1, 2, 3, 4])
    expect(new Set(REGION_OCTETS.map(regionOctet)).size).toBe(REGION_OCTETS.length)
    for (const region of ['xx-test-1', 'lab-1', '', 'us-east-99']) {
      const octet = regionOctet(region)
      expect(octet).toBe(regionOctet(region))
      expect(octet).toBeGreaterThan(REGION_OCTETS.length)
      expect(octet).toBeLessThanOrEqual(254)
    }
  })
})

describe('HSM supervision', () => {
  it('takes the HSM bin\'s own line as the reason it failed to start, else the end of its log', () => {
    const tail = [
      '{"level":60,"msg":"HSM failed to start","err":{"stack":"HsmError: ...\\n    at ..."}}',
      'hsmlab-hsm: [HSM_ERR_BACKUP_TAMPERED] cannot restore the backup file /d/restore.backup: the backup failed authentication'
    ].join('\n')
    expect(startFailureReason(tail)).toBe('[HSM_ERR_BACKUP_TAMPERED] cannot restore the backup file /d/restore.backup: the backup failed authentication')
    expect(startFailureReason('Error: something else\n    at x')).toBe('Error: something else\n    at x')
    expect(startFailureReason('')).toBe('')
  })

  it('wakes the wait for a ready line when its file changes, else after the fallback', async () => {
    const file = join(tmpDir('hsmlab-file-watch-'), 'stdout.log')
    writeFileSync(file, '')
    const changes = new cp.FileWatch(file)
    onTestFinished(() => { changes.close() })
    // A write wakes a wait whose fallback is far beyond the test's deadline.
    const woken = changes.next(600_000)
    appendFileSync(file, '{"event":"ready"}\n')
    await woken
    // A file nobody writes: only the fallback ends the wait.
    const quietFile = join(tmpDir('hsmlab-file-watch-'), 'stdout.log')
    writeFileSync(quietFile, '')
    const quiet = new cp.FileWatch(quietFile)
    onTestFinished(() => { quiet.close() })
    const started = Date.now()
    await quiet.next(100)
    expect(Date.now() - started).toBeGreaterThanOrEqual(90)
    // notify (the process exited) and close wake a wait too.
    const notified = changes.next(600_000)
    changes.notify()
    await notified
    const closed = changes.next(600_000)
    changes.close()
    await closed
  })
})

describe('lab clock', () => {
  it('runs clockSpeed times real time and never goes back across a change of speed', () => {
    let real = 1_000_000
    const clock = LabClock.anchored(undefined, 100, () => real)
    real += 1_000
    expect(clock.now()).toBe(1_000_000 + 100_000)
    const again = LabClock.anchored(clock.toJSON(), 1, () => real)
    expect(again.now()).toBe(1_100_000)
    real += 10
    expect(again.now()).toBe(1_100_010)
  })
})

describe('X.509 for InitializeCluster', () => {
  it('accepts a certificate of the CSR signed by the trust anchor, and nothing else', () => {
    const dir = tmpDir()
    // A CSR as an HSM makes it (hsm certificates.ts, type 64).
    const key = p256KeyFromSeed(new Uint8Array(32).fill(7))
    const csrPem = certificationRequest(x509Name('cluster-abcdefghijk', 'test'), key)
    const keyPem = createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString()
    writeFileSync(join(dir, 'csr.pem'), csrPem)
    const run = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }) }
    run('req', '-new', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=customerCA')
    run('x509', '-req', '-in', 'csr.pem', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'signed.crt', '-days', '30')
    run('req', '-new', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other.key', '-out', 'other.crt', '-days', '30', '-subj', '/CN=otherCA')
    const signed = readFileSync(join(dir, 'signed.crt'), 'utf8')
    const ca = readFileSync(join(dir, 'ca.crt'), 'utf8')
    const other = readFileSync(join(dir, 'other.crt'), 'utf8')
    expect(() => { checkSignedCertificate(signed, ca, keyPem) }).not.toThrow()
    expect(() => { checkSignedCertificate(signed, other, keyPem) }).toThrow(/not signed by the TrustAnchor/)
    expect(() => { checkSignedCertificate(ca, ca, keyPem) }).toThrow(/does not match/)
    expect(() => { checkSignedCertificate('garbage', ca, keyPem) }).toThrow(/not a PEM-encoded X.509/)
  })
})

describe('errors', () => {
  it('documents every exported error code in docs/errors.md, and only those', () => {
    const page = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
    const documented = [...page.matchAll(/^### (CP_ERR_\w+)$/gm)].map(m => m[1]).sort()
    const exported = Object.entries(cp).filter(([name]) => name.startsWith('CP_ERR_')).map(([name, value]) => {
      expect(value).toBe(name)
      return name
    }).sort()
    expect(documented).toEqual(exported)
    expect([...cp.CONTROL_PLANE_ERROR_CODES].sort()).toEqual(exported)
  })

  it('documents every failure cause of a synchronisation record in docs/control-plane.md', () => {
    const page = readFileSync(new URL('../../../docs/control-plane.md', import.meta.url), 'utf8')
    const table = page.slice(page.indexOf('### Records and failure causes'), page.indexOf('### Between regions'))
    const documented = [...table.matchAll(/`([A-Z_]+)`/g)].map(m => m[1]).filter(c => c !== undefined && /_/.test(c)).sort()
    expect(documented).toEqual([...cp.SYNC_FAILURE_CODES].sort())
    // Every refusal an HSM's syncApply can answer is a failure cause a record can show.
    for (const code of Object.values(SyncOutcomeCode)) expect(cp.SYNC_FAILURE_CODES).toContain(code)
  })

  it('errors carry a stable code, a name and their cause', () => {
    const err = new cp.ControlPlaneError(cp.CP_ERR_STATE, 'bad', { cause: new Error('x') })
    expect(err).toMatchObject({ name: 'ControlPlaneError', code: 'CP_ERR_STATE', message: 'bad' })
    expect(err.cause).toBeInstanceOf(Error)
  })
})
