/**
 * Goal: when an HSM is unreachable, untrusted, gone or silent, cloudhsm_mgmt_util says so for that
 * server, in bounded time, and the other servers still complete the command.
 *
 * Method: real HSM processes and the real CMU bin. A port nobody listens on gives "Connection
 * refused" at start-up; a configuration whose CAfile is another cluster's trust anchor gives a
 * certificate failure; an HSM killed mid-session is reported as not connected; an HSM stopped
 * with SIGSTOP (alive but silent) is reported once the request timeout (--request-timeout-ms)
 * has passed.
 */
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { writeCmuConfig } from '@hsmlab/client'
import { encodeTrustAnchor } from '@hsmlab/crypto'
import { createClusterSecrets } from '@hsmlab/hsm'
import { runCmuBin, startCluster, startCmuBin, usersSection } from './cmu-helpers.js'

/** A local port that nothing listens on (bound, then released). */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  const address = server.address()
  await new Promise(resolve => server.close(resolve))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

describe('cloudhsm_mgmt_util when HSMs fail', () => {
  it('reports a refused and an untrusted server at start-up and keeps the server ids of the configuration', async () => {
    const cluster = await startCluster(2)
    const port = await freePort()
    const strangerAnchor = join(cluster.dir, 'other-customerCA.crt')
    await writeFile(strangerAnchor, encodeTrustAnchor(createClusterSecrets().anchor.publicKey))
    const config = join(cluster.dir, 'mixed.cfg')
    const [first, second] = cluster.hsms
    await writeCmuConfig(config, [
      { name: 'hsm0', hostname: '127.0.0.1', port: first?.port ?? 0, caFile: cluster.anchorFile, enabled: true },
      { name: 'gone', hostname: '127.0.0.1', port, caFile: cluster.anchorFile, enabled: true },
      { name: 'stranger', hostname: '127.0.0.1', port: second?.port ?? 0, caFile: strangerAnchor, enabled: true }
    ])
    const run = await runCmuBin([config], 'listUsers\ninfo server 1\nquit\n')
    expect(run.stdout).toContain(
      `\nConnecting to server 'gone': hostname '127.0.0.1', port ${port}...\nConnection to server 127.0.0.1(127.0.0.1) on port ${port} failed:Connection refused\n`)
    expect(run.stdout).toMatch(new RegExp(`\nConnecting to server 'stranger': hostname '127\\.0\\.0\\.1', port ${second?.port ?? 0}\\.\\.\\.\n` +
      `Connection to server 127\\.0\\.0\\.1\\(127\\.0\\.0\\.1\\) on port ${second?.port ?? 0} failed:Certificate verification failed: .*not signed by the trust anchor`))
    expect(run.stdout).toContain('aws-cloudhsm>listUsers\n' + usersSection('server 0(hsm0)', [[1, 'PRECO', 'admin'], [2, 'AU', 'app_user']]) + 'aws-cloudhsm>info server 1\n')
    expect(run.stdout).toContain(`1       gone                    127.0.0.1       ${String(port).padEnd(8)}Disconnected    -                       Not logged in\n`)
    expect(run.code).toBe(0)
  })

  it('reports an HSM that accepts the connection but never completes the handshake as timed out', async () => {
    const cluster = await startCluster(2)
    const config = await cluster.cmuConfig()
    const silent = cluster.hsms[1]?.process.child
    silent?.kill('SIGSTOP')
    onTestFinished(() => { silent?.kill('SIGCONT') })
    const run = await runCmuBin([config, '--connect-timeout-ms', '1000'], 'listUsers\nquit\n')
    const port = cluster.hsms[1]?.port ?? 0
    expect(run.stdout).toContain(`Connecting to server 'hsm1': hostname '127.0.0.1', port ${port}...\n` +
      `Connection to server 127.0.0.1(127.0.0.1) on port ${port} failed:Connection timed out\naws-cloudhsm>listUsers\nUsers on server 0(hsm0):\n`)
    expect(run.code).toBe(0)
  })

  it('reports an HSM killed mid-session as not connected; the others complete', async () => {
    const cluster = await startCluster(3)
    const config = await cluster.cmuConfig()
    const cmu = startCmuBin([config])
    cmu.type('loginHSM PRECO admin password')
    let at = await cmu.waitForOutput('loginHSM success on server 2(hsm2)\n')
    await cluster.hsms[1]?.process.kill()
    cmu.type('listUsers')
    at = await cmu.waitForOutput('aws-cloudhsm>listUsers\n', at)
    at = await cmu.waitForOutput('aws-cloudhsm>', at)
    expect(cmu.process.stdout().slice(0, at)).toContain('aws-cloudhsm>listUsers\n' +
      usersSection('server 0(hsm0)', [[1, 'PRECO', 'admin'], [2, 'AU', 'app_user']]) +
      'listUsers failed: server is not connected\nlistUsers failed on server 1(hsm1)\n' +
      usersSection('server 2(hsm2)', [[1, 'PRECO', 'admin'], [2, 'AU', 'app_user']]) + 'aws-cloudhsm>')
    cmu.type('changePswd PRECO admin co12345')
    cmu.type('y')
    at = await cmu.waitForOutput('Retry/Ignore/Abort?(R/I/A):', at)
    cmu.type('I')
    await cmu.waitForOutput('aws-cloudhsm>', at)
    expect(cmu.process.stdout()).toContain('Changing password for admin(PRECO) on 3 nodes\n' +
      'changePswd failed: server is not connected\nchangePswd failed on server 1(hsm1)\n\nRetry/Ignore/Abort?(R/I/A):I\n' +
      'aws-cloudhsm>')
    cmu.type('quit')
    expect(await cmu.process.exited).toBe(0)
  })

  it('reports an HSM that stops answering once the request timeout has passed', async () => {
    const cluster = await startCluster(2)
    const config = await cluster.cmuConfig()
    const cmu = startCmuBin([config, '--request-timeout-ms', '1500'])
    const at = await cmu.waitForOutput('aws-cloudhsm>')
    const silent = cluster.hsms[1]?.process.child
    silent?.kill('SIGSTOP')
    onTestFinished(() => { silent?.kill('SIGCONT') })
    const started = Date.now()
    cmu.type('listUsers')
    await cmu.waitForOutput('listUsers failed on server 1(hsm1)\n', at)
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400)
    expect(cmu.process.stdout()).toContain('Users on server 0(hsm0):\n')
    expect(cmu.process.stdout()).toContain('listUsers failed: server did not respond within 1500 ms\nlistUsers failed on server 1(hsm1)\n')
    silent?.kill('SIGCONT')
    cmu.type('quit')
    expect(await cmu.process.exited).toBe(0)
  })
})
