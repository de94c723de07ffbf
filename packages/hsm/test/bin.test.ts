/**
 * The `hsmlab-hsm` process: ready line, graceful stop, durability across SIGKILL, and refusal to
 * start on a data directory that cannot be loaded (exit 2, naming the file).
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { createManufacturerKey, writeManufacturerKey } from '../src/index.js'
import { activate, connect, expectCode, loginAs, provisionTestHsm, runHsm, spawnHsm } from './helpers.js'

describe('hsmlab-hsm', () => {
  it('prints exactly one ready line once it listens, and stops with exit 0 on SIGTERM', async () => {
    const hsm = await runHsm(await provisionTestHsm())
    expect(hsm.ready).toEqual({ event: 'ready', pid: hsm.proc.child.pid, hsmId: hsm.hsmId, host: '127.0.0.1', port: expect.any(Number) })
    expect(hsm.ready.port).toBeGreaterThan(0)
    const conn = await connect(hsm)
    expect((await conn.call('getHsmInfo', {})).hsmId).toBe(hsm.hsmId)
    hsm.proc.child.kill('SIGTERM')
    expect(await hsm.proc.exited).toBe(0)
    expect(hsm.proc.stdout().trim().split('\n')).toHaveLength(1)
    expect(hsm.proc.stderr()).toBe('')
    await expect(stat(join(hsm.dataDir, 'hsm.pid'))).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('refuses to serve a data directory another live process serves', async () => {
    const hsm = await runHsm(await provisionTestHsm())
    expect((await readFile(join(hsm.dataDir, 'hsm.pid'), 'utf8')).trim()).toBe(String(hsm.proc.child.pid))
    const second = spawnHsm(hsm)
    expect(await second.exited).toBe(1)
    expect(second.stderr()).toContain('HSM_ERR_DATA_DIR_LOCKED')
    expect(second.stderr()).toContain(String(hsm.proc.child.pid))
    expect((await (await connect(hsm)).call('listUsers', {})).users).toHaveLength(2)
  })

  it('keeps every acknowledged user change across SIGKILL', async () => {
    const provisioned = await provisionTestHsm()
    const first = await runHsm(provisioned)
    const co = await activate(first)
    await co.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' })
    await co.call('createUser', { userType: 'CO', userName: 'officer2', password: 'officer2pw' })
    await co.call('changePassword', { userType: 'CU', userName: 'alice', password: 'alicepw2' })
    await co.call('deleteUser', { userType: 'CO', userName: 'officer2' })
    const conn = await connect(first)
    await expectCode(conn.call('login', { userType: 'CU', userName: 'alice', password: 'wrong12' }), 'USER_LOGIN_FAILURE')
    await first.proc.kill()
    // The lock of the killed process is left behind, and taken over.
    expect((await readFile(join(provisioned.dataDir, 'hsm.pid'), 'utf8')).trim()).toBe(String(first.proc.child.pid))

    const second = await runHsm(provisioned)
    expect(second.ready.hsmId).toBe(first.hsmId)
    const { users } = await (await connect(second)).call('listUsers', {})
    expect(users.map(u => [u.userId, u.userType, u.userName, u.loginFailureCount])).toEqual([
      [1, 'CO', 'admin', 0], [2, 'AU', 'app_user', 0], [3, 'CU', 'alice', 1]
    ])
    await loginAs(second, 'CO', 'admin', 'officer1pw')
    await loginAs(second, 'CU', 'alice', 'alicepw2')
  })

  it('exits 2 naming the file when a store was tampered with', async () => {
    const provisioned = await provisionTestHsm()
    const files = (await readdir(provisioned.dataDir)).filter(f => f.startsWith('users.'))
    expect(files.length).toBeGreaterThan(0)
    let target = ''
    let size = 0
    for (const f of files) {
      const s = (await stat(join(provisioned.dataDir, f))).size
      if (s > size) { size = s; target = f }
    }
    const path = join(provisioned.dataDir, target)
    const bytes = await readFile(path)
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01
    await writeFile(path, bytes)

    const proc = spawnHsm(provisioned)
    expect(await proc.exited).toBe(2)
    expect(proc.stdout()).toBe('')
    expect(proc.stderr()).toContain(target)
    expect(proc.stderr()).toContain('HSM_ERR_STORE_LOAD')
  })

  it('exits 2 for another manufacturer key or an unprovisioned directory, 1 for bad arguments', async () => {
    const provisioned = await provisionTestHsm()
    const otherKeyFile = join(tmpDir(), 'other.key')
    await writeManufacturerKey(otherKeyFile, createManufacturerKey())
    const wrongKey = spawnHsm({ dataDir: provisioned.dataDir, keyFile: otherKeyFile })
    expect(await wrongKey.exited).toBe(2)
    expect(wrongKey.stderr()).toContain('storage.key')

    const empty = spawnHsm({ dataDir: tmpDir(), keyFile: provisioned.keyFile })
    expect(await empty.exited).toBe(2)
    expect(empty.stderr()).toContain('HSM_ERR_NOT_PROVISIONED')

    const badPort = spawnHsm(provisioned, ['--port', 'eighty'])
    expect(await badPort.exited).toBe(1)
    expect(badPort.stderr()).toContain('--port')
  })
})
