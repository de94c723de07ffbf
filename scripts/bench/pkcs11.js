// Issue 16 rows of npm run bench (run.js calls pkcs11Rows): hsmlab through its PKCS#11 library and
// client daemon beside SoftHSMv2 (Debian's, file backend, one token), with the same pkcs11js loop
// in a child process per library (pkcs11js's *Async calls run on libuv's threads, UV_THREADPOOL_SIZE=32):
// - durable AES-256 token key generation, keys/s (32 threads);
// - RSA-2048 PKCS#1 v1.5 signatures, 8 threads, signatures/s;
// - AES-GCM encryption of 4 KiB, 8 threads, MiB/s;
// - p50 and p99 of one C_Sign (one thread), beside a bare request to the daemon (PING on its
//   socket, the floor under every call) for hsmlab.
//
//   node scripts/bench/pkcs11.js          runs these rows alone (after npm run build)
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { percentile, msSince, printTable } from './stats.js'

const SELF = fileURLToPath(import.meta.url)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const SOFTHSM = '/usr/lib/softhsm/libsofthsm2.so'
const SECONDS = 3

// ---------------------------------------------------------------------------------------------
// The loop, in a child process: `node pkcs11.js --child MODULE PIN [SOCKET]` prints one JSON line.

async function child (module, pin, socket) {
  const pkcs11js = (await import('pkcs11js')).default
  const p11 = new pkcs11js.PKCS11()
  p11.load(module)
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
  const slot = p11.C_GetSlotList(true)[0]
  const open = () => p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
  const main = open()
  p11.C_Login(main, pkcs11js.CKU_USER, pin)
  // Key generation waits on the HSM's disk, which commits a group of creations at once: 32 in flight.
  const sessions = Array.from({ length: 32 }, open)
  // `most`: an HSM holds at most 3300 token keys (hsmDefaults.keysMax), warm-up included.
  const rate = async (perSession, threads = 8, most = Infinity) => {
    // One unmeasured second first, for both libraries: JIT warm-up of a fresh lab's processes.
    const warm = Date.now() + 1000
    let warmed = 0
    await Promise.all(sessions.slice(0, threads).map(async s => { while (Date.now() < warm && warmed < most / 4) { await perSession(s); warmed++ } }))
    let done = 0
    const until = Date.now() + SECONDS * 1000
    const started = process.hrtime.bigint()
    await Promise.all(sessions.slice(0, threads).map(async s => { while (Date.now() < until && warmed + done < most) { await perSession(s); done++ } }))
    return done / (msSince(started) / 1000)
  }
  let n = 0
  const keygen = await rate(async s => {
    await p11.C_GenerateKeyAsync(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_VALUE_LEN, value: 32 }, { type: pkcs11js.CKA_LABEL, value: `bench-${n++}` },
      { type: pkcs11js.CKA_ENCRYPT, value: true }, { type: pkcs11js.CKA_DECRYPT, value: true }
    ])
  }, 32, 3000)
  const rsa = p11.C_GenerateKeyPair(main, { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
    [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_MODULUS_BITS, value: 2048 }, { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }, { type: pkcs11js.CKA_VERIFY, value: true }],
    [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_SIGN, value: true }, { type: pkcs11js.CKA_PRIVATE, value: true }, { type: pkcs11js.CKA_SENSITIVE, value: true }])
  const aes = p11.C_GenerateKey(main, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
    { type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_VALUE_LEN, value: 32 }, { type: pkcs11js.CKA_ENCRYPT, value: true }, { type: pkcs11js.CKA_DECRYPT, value: true }
  ])
  const message = Buffer.alloc(64, 1)
  const sign = await rate(async s => {
    p11.C_SignInit(s, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, rsa.privateKey)
    await p11.C_SignAsync(s, message, Buffer.alloc(256))
  })
  const block = Buffer.alloc(4096, 2)
  const gcm = await rate(async s => {
    p11.C_EncryptInit(s, { mechanism: pkcs11js.CKM_AES_GCM, parameter: { type: pkcs11js.CK_PARAMS_AES_GCM_v240, iv: Buffer.alloc(12, 3), ivBits: 96, tagBits: 128 } }, aes)
    await p11.C_EncryptAsync(s, block, Buffer.alloc(4096 + 16))
  })
  const signMs = []
  for (let i = 0; i < 400; i++) {
    const started = process.hrtime.bigint()
    p11.C_SignInit(main, { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, rsa.privateKey)
    p11.C_Sign(main, message, Buffer.alloc(256))
    signMs.push(msSince(started))
  }
  const pingMs = socket === undefined ? [] : await pings(socket, 400)
  p11.C_Finalize()
  console.log(JSON.stringify({
    keygen, sign, gcmMiBs: gcm * 4096 / 1048576,
    signP50: percentile(signMs, 50), signP99: percentile(signMs, 99),
    pingP50: percentile(pingMs, 50), pingP99: percentile(pingMs, 99)
  }))
}

/** Round trips of a bare daemon request (PING), on one socket after its HELLO. */
async function pings (socketPath, count) {
  const { Op, Tag, encodeRequest, u64 } = await import('@hsmlab/client-daemon')
  const socket = createConnection(socketPath)
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const answer = () => new Promise(resolve => {
    let got = Buffer.alloc(0)
    const onData = chunk => {
      got = Buffer.concat([got, chunk])
      if (got.length >= 4 && got.length >= 4 + got.readUInt32BE(0)) { socket.off('data', onData); resolve(got) }
    }
    socket.on('data', onData)
  })
  socket.write(encodeRequest(Op.HELLO, [[Tag.APP, Buffer.alloc(16, 9)], [Tag.ULONG_BYTES, u64(8)]]))
  await answer()
  const ms = []
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint()
    socket.write(encodeRequest(Op.PING, []))
    await answer()
    ms.push(msSince(started))
  }
  socket.destroy()
  return ms
}

function runChild (module, pin, env, socket) {
  return new Promise((resolve, reject) => {
    const args = [SELF, '--child', module, pin, ...(socket === undefined ? [] : [socket])]
    const c = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env, UV_THREADPOOL_SIZE: '32' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    c.stdout.on('data', d => { out += d })
    c.stderr.on('data', d => { err += d })
    c.on('exit', code => {
      if (code !== 0) reject(new Error(`the pkcs11js loop on ${module} failed (${code}):\n${err}`))
      else resolve(JSON.parse(out.trim().split('\n').pop()))
    })
  })
}

// ---------------------------------------------------------------------------------------------
// The rows

/**
 * @param {{ row: Function, hsmlab: (args: string[]) => string, work: string, labs: string[] }} bench
 */
export async function pkcs11Rows ({ row, hsmlab, work, labs }) {
  spawnSync('npm', ['run', 'build', '-w', '@hsmlab/pkcs11'], { cwd: ROOT, stdio: 'ignore' })
  // SoftHSMv2: one token in a directory of its own (file backend).
  const softDir = join(work, 'softhsm')
  mkdirSync(join(softDir, 'tokens'), { recursive: true })
  writeFileSync(join(softDir, 'softhsm2.conf'), `directories.tokendir = ${join(softDir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`)
  const softEnv = { SOFTHSM2_CONF: join(softDir, 'softhsm2.conf') }
  const init = spawnSync('softhsm2-util', ['--init-token', '--free', '--label', 'bench', '--pin', '1234', '--so-pin', '1234'], { env: { ...process.env, ...softEnv }, encoding: 'utf8' })
  if (init.status !== 0) throw new Error(`softhsm2-util --init-token failed: ${init.stderr}`)

  // hsmlab: a cluster of 2 HSMs, through their fault-proxy links, as applications of a lab reach it.
  const dir = join(work, 'pkcs11')
  const topology = join(work, 'pkcs11.json')
  writeFileSync(topology, JSON.stringify({ regions: [{ name: 'us-east-1', clusters: [{ name: 'apps', hsms: 2, activate: { admin: 'Admin1234' }, users: [{ type: 'CU', name: 'bench', password: 'Bench1234' }] }] }] }))
  hsmlab(['up', '--topology', topology, '--dir', dir])
  labs.push(dir)
  const client = JSON.parse(hsmlab(['status', '--json', '--dir', dir])).regions[0].clusters[0].client

  const soft = await runChild(SOFTHSM, '1234', softEnv)
  const lab = await runChild(client.pkcs11Module, 'bench:Bench1234', client.env, client.socket)
  row('PKCS#11 durable AES-256 token keygen, 32 threads, vs SoftHSMv2', lab.keygen, soft.keygen, 'keys/s', '≥ 10x')
  row('PKCS#11 RSA-2048 SHA256-RSA-PKCS sign, 8 threads, vs SoftHSMv2', lab.sign, soft.sign, 'sig/s', '≥ 0.5x')
  row('PKCS#11 AES-GCM 4 KiB encrypt, 8 threads, vs SoftHSMv2', lab.gcmMiBs, soft.gcmMiBs, 'MiB/s', '≥ 0.5x')
  row('PKCS#11 one C_Sign p50, vs a bare daemon request p50', lab.signP50, lab.pingP50, 'ms', 'report')
  row('PKCS#11 one C_Sign p99, vs a bare daemon request p99', lab.signP99, lab.pingP99, 'ms', 'report')
  row('PKCS#11 one C_Sign p50, vs SoftHSMv2 p50', lab.signP50, soft.signP50, 'ms', 'report')
}

if (process.argv[2] === '--child') {
  await child(process.argv[3], process.argv[4], process.argv[5])
} else if (process.argv[1] === SELF) {
  const work = mkdtempSync(join(tmpdir(), 'hsmlab-bench-pkcs11-'))
  const labs = []
  const rows = []
  const HSMLAB = fileURLToPath(new URL('../../packages/lab/bin/hsmlab.js', import.meta.url))
  const hsmlab = (args) => {
    const run = spawnSync(process.execPath, [HSMLAB, ...args], { encoding: 'utf8', timeout: 120_000 })
    if (run.status !== 0) throw new Error(`hsmlab ${args.join(' ')} failed (${run.status}):\n${run.stdout}\n${run.stderr}`)
    return run.stdout
  }
  try {
    await pkcs11Rows({ row: (measure, value, baseline, unit, goal) => rows.push({ measure, value, baseline, unit, goal }), hsmlab, work, labs })
    printTable(rows)
  } finally {
    for (const dir of labs) spawnSync(process.execPath, [HSMLAB, 'down', '--dir', dir], { stdio: 'ignore' })
    rmSync(work, { recursive: true, force: true })
  }
}
