/**
 * The `hsmlab` command line, in process (`main(argv, io)`), for everything that needs no HSM:
 * help, usage errors and their exit codes, and the refusals that happen before anything starts;
 * and `up` against control planes that run elsewhere (`--control-plane`) when they do not answer.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { DEFAULT_TOPOLOGY_PATH, LAB_STATE_FORMAT, labUp, main } from '../src/index.js'

async function run (argv: string[], cwd: string): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await main(argv, { stdout: t => { stdout += t }, stderr: t => { stderr += t }, cwd })
  return { code, stdout, stderr }
}

describe('hsmlab main', () => {
  it('prints the usage for --help and each command\'s help', async () => {
    const cwd = tmpDir()
    const help = await run(['--help'], cwd)
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/usage: hsmlab <command>[\s\S]*up[\s\S]*status[\s\S]*down/)
    for (const command of ['up', 'status', 'down', 'backup']) {
      const r = await run([command, '--help'], cwd)
      expect(r.code).toBe(0)
      expect(r.stdout).toContain(`usage: hsmlab ${command}`)
    }
  })

  it('exits 2 with the usage for an unknown command, an unknown option or no command', async () => {
    const cwd = tmpDir()
    const unknown = await run(['start'], cwd)
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("unknown command 'start'")
    expect(unknown.stderr).toContain('usage: hsmlab')
    const option = await run(['status', '--jsn'], cwd)
    expect(option.code).toBe(2)
    expect(option.stderr).toContain("Unknown option '--jsn'")
    expect(option.stderr).toContain('usage: hsmlab status')
    expect((await run([], cwd)).code).toBe(2)
    expect((await run(['up', '--log-level', 'loud'], cwd)).code).toBe(2)
  })

  it('status without a lab says so and exits 1; down without a lab is a no-op', async () => {
    const cwd = tmpDir()
    const status = await run(['status'], cwd)
    expect(status.code).toBe(1)
    expect(status.stderr).toContain('[LAB_ERR_NO_LAB] there is no lab in')
    const down = await run(['down', '--dir', 'elsewhere'], cwd)
    expect(down.code).toBe(0)
    expect(down.stdout).toContain('nothing to stop')
    expect(existsSync(join(cwd, 'elsewhere'))).toBe(false)
  })

  it('refuses a bad topology before it creates anything', async () => {
    const cwd = tmpDir()
    writeFileSync(join(cwd, 'bad.json'), JSON.stringify({ regions: [{ name: 'us-east-1', clusters: [{ name: 'primary', hsms: 0 }] }] }))
    const r = await run(['up', '--topology', 'bad.json'], cwd)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('[LAB_ERR_TOPOLOGY]')
    expect(r.stderr).toContain('regions[0].clusters[0].hsms: must be a whole number from 1 to 28')
    expect(existsSync(join(cwd, '.hsmlab'))).toBe(false)
  })

  it('refuses a clone of a cluster it does not activate before it creates anything', async () => {
    const cwd = tmpDir()
    writeFileSync(join(cwd, 'clone.json'), JSON.stringify({
      regions: [
        { name: 'us-east-1', clusters: [{ name: 'primary', hsms: 1 }] },
        { name: 'us-west-2', clusters: [{ name: 'dr', hsms: 1, cloneOf: { region: 'us-east-1', cluster: 'primary' } }] }
      ]
    }))
    const r = await run(['up', '--topology', 'clone.json', '--dir', 'lab'], cwd)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('[LAB_ERR_TOPOLOGY]')
    expect(r.stderr).toContain('regions[1].clusters[0].cloneOf: names us-east-1/primary, which the lab does not activate')
    expect(existsSync(join(cwd, 'lab'))).toBe(false)
  })

  it('up --control-plane: wants REGION=URL once per region of the topology, an http(s) URL without a path', async () => {
    const cwd = tmpDir()
    const form = await run(['up', '--control-plane', 'us-east-1'], cwd)
    expect(form.code).toBe(2)
    expect(form.stderr).toContain("--control-plane must be REGION=URL (like us-east-1=http://cp-us-east-1:8080), not 'us-east-1'")
    const twice = await run(['up', '--control-plane', 'us-east-1=http://a:1', '--control-plane', 'us-east-1=http://b:1'], cwd)
    expect(twice.code).toBe(2)
    expect(twice.stderr).toContain('--control-plane names region us-east-1 twice')
    const unknown = await run(['up', '--control-plane', 'ap-south-1=http://cp:8080'], cwd)
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("--control-plane names region ap-south-1, which the lab's topology does not have (its regions: us-east-1, us-west-2, eu-west-1)")
    for (const url of ['ftp://cp:8080', 'http://cp:8080/api', 'cp:8080']) {
      const bad = await run(['up', '--control-plane', `us-east-1=${url}`], cwd)
      expect(bad.code, url).toBe(2)
      expect(bad.stderr).toContain('the endpoint must be an http:// or https:// URL with no path')
    }
    expect(existsSync(join(cwd, '.hsmlab', 'lab.json'))).toBe(false)
  })

  it('up --control-plane: waits for each to answer as its region\'s, then fails naming the endpoint and why', async () => {
    const cwd = tmpDir()
    // A control plane of the wrong region on one endpoint; nothing at all on the other.
    const server = createServer((_req, res) => { res.end(JSON.stringify({ region: 'eu-west-1', pid: 42 })) })
    await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
    onTestFinished(() => { server.close() })
    const wrong = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const closed = await new Promise<number>(resolve => {
      const probe = createServer().listen(0, '127.0.0.1', () => { const port = (probe.address() as AddressInfo).port; probe.close(() => { resolve(port) }) })
    })
    // Every region of the default lab elsewhere, so that this test starts no process.
    const err = await labUp({ cwd, controlPlanes: { 'us-east-1': wrong, 'us-west-2': `http://127.0.0.1:${closed}`, 'eu-west-1': `http://127.0.0.1:${closed}` }, readyTimeoutMs: 300 })
      .then(() => undefined, (e: unknown) => e as { code?: string, message?: string })
    expect(err?.code).toBe('LAB_ERR_CONTROL_PLANE')
    expect(err?.message).toContain(`the control plane of us-east-1 at ${wrong} did not answer GET /_hsmlab/health as us-east-1's within 0.3 s (it is the control plane of eu-west-1)`)
    expect(err?.message).toContain(`the control plane of us-west-2 at http://127.0.0.1:${closed} did not answer`)
    expect(err?.message).toContain('ECONNREFUSED')
    // It remembers them (lab.json), and never started a process of its own.
    const state = JSON.parse(readFileSync(join(cwd, '.hsmlab', 'lab.json'), 'utf8')) as { controlPlanes: Array<{ region: string, endpoint?: string, pid: number | null, port: number }> }
    expect(state.controlPlanes).toEqual([
      { region: 'us-east-1', endpoint: wrong, pid: null, port: 0 },
      { region: 'us-west-2', endpoint: `http://127.0.0.1:${closed}`, pid: null, port: 0 },
      { region: 'eu-west-1', endpoint: `http://127.0.0.1:${closed}`, pid: null, port: 0 }
    ])
  })

  it('up --control-plane: refuses a region whose control plane the lab runs itself', async () => {
    const cwd = tmpDir()
    const dir = join(cwd, '.hsmlab')
    mkdirSync(dir)
    const state = {
      format: LAB_STATE_FORMAT,
      createdAt: new Date().toISOString(),
      topology: JSON.parse(readFileSync(DEFAULT_TOPOLOGY_PATH, 'utf8')) as unknown,
      controlPlanes: [{ region: 'us-east-1', port: 40401, pid: null }, { region: 'us-west-2', port: 40402, pid: null }],
      clusters: []
    }
    writeFileSync(join(dir, 'lab.json'), JSON.stringify(state))
    const r = await run(['up', '--control-plane', 'us-east-1=http://cp-us-east-1:8080'], cwd)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`the lab in ${dir} runs its own control plane for us-east-1; it cannot switch to one that runs elsewhere`)
    expect(JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8'))).toEqual(state)
  })

  it('backup: wants one REGION/CLUSTER, and a lab', async () => {
    const cwd = tmpDir()
    const none = await run(['backup'], cwd)
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('name one cluster as REGION/CLUSTER')
    const help = await run(['backup', '--help'], cwd)
    expect(help.stdout).toContain('usage: hsmlab backup')
    const noLab = await run(['backup', 'us-east-1/primary'], cwd)
    expect(noLab.code).toBe(1)
    expect(noLab.stderr).toContain('[LAB_ERR_NO_LAB]')
  })
})
