/**
 * Goal: docker-compose.yml runs for real on a container engine, as a person runs it (README.md
 * "Docker", the Podman steps): the image builds, every service comes up healthy, the shells work
 * through the fault proxy, a restarted HSM container comes back on its address with its data, a
 * control plane killed and started again adopts its HSMs, `hsmlab fault partition us-west-2`
 * against the docker lab cuts that region off as it does in the local lab, and `down` / `up` keep
 * the data while `down -v` deletes it. An application on the host reaches the HSMs through the
 * published client links, and the AWS CLI reaches a control plane's published port.
 *
 * Method: Podman serving Docker's API, driven by Debian's docker-compose, set up by
 * scripts/docker/podman-setup.sh (the base image made with debootstrap when it is missing, the
 * service started). Podman without systemd runs health checks only when asked, so while a
 * `docker-compose up` waits on `service_healthy`, the test runs `podman healthcheck run` on the
 * project's containers, as the README's loop does. Skipped only where no engine can run: not root,
 * or Podman missing with no apt-get to install it. Every step waits on a condition with a
 * deadline; the project is taken down with its volumes at the end, also on failure, and the
 * containers' logs are printed when the test failed.
 */
import { spawn } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it, onTestFailed, onTestFinished } from 'vitest'
import { tmpDir, waitFor } from '@hsmlab/testing'

const root = new URL('../..', import.meta.url).pathname.replace(/\/$/, '')
const SETUP = join(root, 'scripts/docker/podman-setup.sh')
const PROJECT = `hsmlab-e2e-${process.pid}`
/** The whole test, cold (base image and image built) included: the bound. */
const TEST_TIMEOUT_MS = 8 * 60_000
/** How often the test stands in for systemd's health-check timer while `up` waits, in milliseconds. */
const HEALTH_CHECK_INTERVAL_MS = 500
const CO = 'loginHSM CO admin Admin1234'
const CU = 'loginHSM -u CU -s alice -p Alice1234'

function canRunEngine (): string | undefined {
  if (process.getuid?.() !== 0) return 'not root: the Docker lab test runs rootful Podman (README.md "Docker" has the steps for Docker)'
  const onPath = (name: string): boolean => (process.env.PATH ?? '').split(':').some(d => existsSync(join(d, name)))
  if (!onPath('podman') && !onPath('apt-get')) return 'no podman, and no apt-get to install it: no container engine can run here'
  return undefined
}

interface Run { code: number, stdout: string, stderr: string }

/** Runs a command to its end (never throws on its exit code); `input` is its standard input. */
async function run (cmd: string, args: string[], env: NodeJS.ProcessEnv, opts: { input?: string, timeoutMs?: number } = {}): Promise<Run> {
  return await new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, opts.timeoutMs ?? 120_000)
    child.on('error', reject)
    child.on('close', code => { clearTimeout(timer); resolve({ code: code ?? -1, stdout, stderr }) })
    child.stdin.end(opts.input ?? '')
  })
}

function expectOk (r: Run, what: string): Run {
  expect(r.code, `${what} exit code\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0)
  return r
}

describe('the Docker lab on Podman (docker-compose.yml, for real)', () => {
  it('builds, comes up healthy, serves the shells and the AWS API, survives restarts, partitions, down and up', async (context) => {
    const why = canRunEngine()
    if (why !== undefined) context.skip(why)
    const startedAt = Date.now()

    // The engine: idempotent and cached (a second run costs a second).
    const setup = expectOk(await run(SETUP, [], process.env, { timeoutMs: 240_000 }), SETUP)
    const env: NodeJS.ProcessEnv = { ...process.env, COMPOSE_PROJECT_NAME: PROJECT, COMPOSE_HTTP_TIMEOUT: '300' }
    for (const m of setup.stdout.matchAll(/^export (\w+)=(.*)$/gm)) env[m[1] ?? ''] = m[2]
    expect(env.DOCKER_HOST, setup.stdout).toMatch(/^unix:\/\//)
    const compose = async (args: string[], opts: { input?: string, timeoutMs?: number } = {}): Promise<Run> => await run('docker-compose', args, env, opts)
    const podman = async (args: string[], timeoutMs = 60_000): Promise<Run> => await run('podman', args, env, { timeoutMs })
    const container = (service: string): string => `${PROJECT}_${service}_1`

    // Whatever happens, the project goes, volumes included; its logs are printed when the test failed.
    onTestFailed(async () => {
      const logs = await compose(['logs', '--no-color', '--tail', '60'], { timeoutMs: 60_000 })
      process.stderr.write(`\n--- docker-compose logs of ${PROJECT} ---\n${logs.stdout}${logs.stderr}\n`)
    })
    onTestFinished(async () => {
      await compose(['--profile', 'tools', 'down', '-v', '--remove-orphans', '-t', '5'], { timeoutMs: 120_000 })
    })

    const build = expectOk(await podman(['build', '--pull=never', '-t', 'hsmlab:local', '.'], 300_000), 'podman build')
    expect(build.stdout).toContain('hsmlab:local')

    // Podman runs health checks only when asked: while `up` waits on them, they are asked for.
    const drivingHealth = async <T>(work: () => Promise<T>): Promise<T> => {
      let done = false
      const driver = (async () => {
        while (!done) {
          const ps = await podman(['ps', '--filter', `label=com.docker.compose.project=${PROJECT}`, '--format', '{{.Names}} {{.Status}}'])
          const waiting = ps.stdout.split('\n').filter(l => /\((starting|unhealthy)\)/.test(l)).map(l => l.split(' ')[0] ?? '')
          await Promise.all(waiting.map(async name => await podman(['healthcheck', 'run', name])))
          await new Promise(resolve => setTimeout(resolve, HEALTH_CHECK_INTERVAL_MS))
        }
      })()
      try {
        return await work()
      } finally {
        done = true
        await driver
      }
    }
    const healthy = async (service: string): Promise<void> => {
      await waitFor(async () => {
        await podman(['healthcheck', 'run', container(service)])
        const status = await podman(['inspect', '--format', '{{.State.Health.Status}}', container(service)])
        return status.stdout.trim() === 'healthy'
      }, { timeoutMs: 90_000, intervalMs: 500, what: `${service} healthy` })
    }
    // `up -d` returns once the one-shot `lab` container started; the lab is ready when it exited 0.
    const up = async (): Promise<string> => {
      expectOk(await drivingHealth(async () => await compose(['up', '-d', '--no-build'], { timeoutMs: 300_000 })), 'docker-compose up -d')
      const wait = await podman(['wait', container('lab')], 180_000)
      const logs = await podman(['logs', container('lab')])
      expect(wait.stdout.trim(), `the lab service's exit code; its output:\n${logs.stdout}${logs.stderr}`).toBe('0')
      return logs.stdout
    }
    const cmu = async (config: string, input: string): Promise<string> =>
      expectOk(await compose(['run', '--rm', '-T', '--no-deps', 'cmu', config], { input }), `cmu ${config}`).stdout

    const first = await up()
    expect(first).toContain('hsmlab: lab ready in')
    expect(first).toContain('created us-east-1/primary, us-west-2/dr')
    expect(first).toContain('faults: fault proxy http://fault-proxy:8474 RUNNING')

    // KMU: a key for alice, on primary's first HSM; replication takes it to the other one.
    const kmu = expectOk(await compose(['run', '--rm', '-T', '--no-deps', 'kmu'], { input: `${CU}\ngenSymKey -t 31 -s 32 -l docker\nexit\n` }), 'kmu')
    const handle = /Key Handle: (\d+)/.exec(kmu.stdout)?.[1]
    expect(handle, kmu.stdout).toBeDefined()

    // CMU as the issue has it: `docker-compose run --rm -T cmu`, a scripted session as the lab's CO.
    const session = expectOk(await compose(['run', '--rm', '-T', 'cmu'], { input: `${CO}\nlistUsers\nfindAllKeys 3 0\nquit\n` }), 'cmu')
    expect(session.stdout).toContain('loginHSM success on server 0(10.201.1.21)')
    expect(session.stdout).toContain('loginHSM success on server 1(10.201.1.22)')
    expect(session.stdout.match(/CU\s+alice/g)).toHaveLength(2)
    expect(session.stdout).toMatch(new RegExp(`Keys on server 0\\(10\\.201\\.1\\.21\\):\\nNumber of keys found 1\\n.*\\n${handle ?? ''}\\(o\\)`))
    expect(session.stdout).toMatch(new RegExp(`Keys on server 1\\(10\\.201\\.1\\.22\\):\\nNumber of keys found 1\\n.*\\n${handle ?? ''}\\(o\\)`))
    // Every client connection went through the fault proxy's client links.
    expect(session.stdout).toContain("hostname 'fault-proxy', port 2301")

    // An application on the host: the published client links, with the lab's configuration.
    const host = tmpDir('hsmlab-docker-host-')
    const labFile = async (path: string): Promise<string> => expectOk(await compose(['run', '--rm', '-T', '--no-deps', '--entrypoint', 'cat', 'cmu', path]), `cat ${path}`).stdout
    const config = JSON.parse(await labFile('/lab/us-east-1-primary.cfg')) as { servers: Array<{ CAfile: string, hostname: string, port: number, e2e_encryption: { owner_cert_path: string } }> }
    const ca = join(host, 'customerCA.crt')
    writeFileSync(ca, await labFile(config.servers[0]?.CAfile ?? ''))
    for (const s of config.servers) { s.hostname = '127.0.0.1'; s.CAfile = ca; s.e2e_encryption.owner_cert_path = ca }
    writeFileSync(join(host, 'primary.cfg'), JSON.stringify(config))
    const fromHost = expectOk(await run(process.execPath, [join(root, 'packages/shells/bin/cloudhsm_mgmt_util.js'), join(host, 'primary.cfg')], process.env, { input: `${CO}\nlistUsers\nquit\n` }), 'cmu on the host')
    expect(fromHost.stdout).toContain('loginHSM success on server 1(10.201.1.22)')

    // The AWS CLI against us-east-1's published port (any credentials; the control plane checks none).
    const aws = async (): Promise<{ Clusters: Array<{ ClusterId: string, State: string, Hsms: Array<{ HsmId: string, State: string, EniIp: string }> }> }> => {
      const r = expectOk(await run('aws', ['cloudhsmv2', 'describe-clusters', '--endpoint-url', 'http://127.0.0.1:4001', '--region', 'us-east-1', '--output', 'json'],
        { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', AWS_PAGER: '', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' }), 'aws cloudhsmv2 describe-clusters')
      return JSON.parse(r.stdout) as Awaited<ReturnType<typeof aws>>
    }
    const before = (await aws()).Clusters
    expect(before.map(c => c.State)).toEqual(['ACTIVE'])
    const hsmsBefore = before[0]?.Hsms.map(h => `${h.HsmId}@${h.EniIp}`).sort()
    expect(hsmsBefore).toHaveLength(2)

    const primaryWhole = async (): Promise<void> => {
      await waitFor(async () => {
        const r = await compose(['run', '--rm', '-T', '--no-deps', 'cmu', '/lab/us-east-1-primary.cfg'], { input: `${CO}\nfindAllKeys 3 0\nquit\n` })
        return r.code === 0 && r.stdout.includes('loginHSM success on server 0(10.201.1.21)') && r.stdout.includes('loginHSM success on server 1(10.201.1.22)') &&
          (r.stdout.match(new RegExp(`\\n${handle ?? ''}\\(o\\)\\n`, 'g')) ?? []).length === 2
      }, { timeoutMs: 120_000, intervalMs: 1000, what: 'both HSMs of primary answering with the key' })
    }

    // `docker-compose restart` of an HSM container: its HSM back on its address, with its data.
    expectOk(await compose(['restart', 'hsm-us-east-1-a'], { timeoutMs: 120_000 }), 'restart hsm-us-east-1-a')
    await healthy('hsm-us-east-1-a')
    await primaryWhole()

    // A control plane killed (SIGKILL) and started again adopts its HSMs: the same ones, ACTIVE.
    expectOk(await compose(['kill', 'cp-us-east-1']), 'kill cp-us-east-1')
    expectOk(await compose(['start', 'cp-us-east-1'], { timeoutMs: 120_000 }), 'start cp-us-east-1')
    await healthy('cp-us-east-1')
    await waitFor(async () => {
      try {
        const clusters = (await aws()).Clusters
        return clusters[0]?.Hsms.every(h => h.State === 'ACTIVE') === true && JSON.stringify(clusters[0]?.Hsms.map(h => `${h.HsmId}@${h.EniIp}`).sort()) === JSON.stringify(hsmsBefore)
      } catch {
        return false
      }
    }, { timeoutMs: 90_000, intervalMs: 1000, what: 'cp-us-east-1 describing its HSMs ACTIVE again' })
    await primaryWhole()

    // `hsmlab fault partition us-west-2` against the docker lab: the region's client links and the
    // WAN links are cut, primary keeps working; healed, dr answers again.
    const fault = async (args: string[]): Promise<string> => expectOk(await compose(['run', '--rm', '-T', '--no-deps', 'lab', 'fault', ...args, '--dir', '/lab']), `hsmlab fault ${args.join(' ')}`).stdout
    const cut = await fault(['partition', 'us-west-2'])
    for (const link of ['us-west-2/dr/hsm-0', 'us-west-2/dr/hsm-1', 'wan/us-east-1->us-west-2', 'wan/us-west-2->us-east-1']) expect(cut).toContain(link)
    const proxy = await (await fetch('http://127.0.0.1:8474/hsmlab/faults')).json() as { partitions: string[] }
    expect(proxy.partitions).toEqual(['us-west-2'])
    const dr = await compose(['run', '--rm', '-T', '--no-deps', 'cmu', '/lab/us-west-2-dr.cfg'], { input: `${CO}\nquit\n` })
    expect(dr.stdout + dr.stderr).not.toContain('loginHSM success')
    expect((await cmu('/lab/us-east-1-primary.cfg', `${CO}\nquit\n`))).toContain('loginHSM success on server 1(10.201.1.22)')
    await fault(['heal'])
    await waitFor(async () => (await compose(['run', '--rm', '-T', '--no-deps', 'cmu', '/lab/us-west-2-dr.cfg'], { input: `${CO}\nquit\n` })).stdout.includes('loginHSM success on server 1(10.201.2.22)'),
      { timeoutMs: 60_000, intervalMs: 1000, what: 'dr answering once healed' })

    // `down` keeps the volumes: `up` again finds the lab whole, the key included.
    expectOk(await compose(['down', '-t', '20'], { timeoutMs: 180_000 }), 'docker-compose down')
    const again = await up()
    expect(again).toContain('nothing to start')
    await primaryWhole()

    // `down -v` deletes them.
    expectOk(await compose(['--profile', 'tools', 'down', '-v', '-t', '20'], { timeoutMs: 180_000 }), 'docker-compose down -v')
    const volumes = await podman(['volume', 'ls', '--filter', `label=com.docker.compose.project=${PROJECT}`, '--format', '{{.Name}}'])
    expect(volumes.stdout.trim()).toBe('')
    process.stderr.write(`docker lab test: ${((Date.now() - startedAt) / 1000).toFixed(0)} s\n`)
  }, TEST_TIMEOUT_MS)
})
