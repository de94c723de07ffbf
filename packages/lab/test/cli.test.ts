/**
 * The `hsmlab` command line, in process (`main(argv, io)`), for everything that needs no HSM:
 * help, usage errors and their exit codes, and the refusals that happen before anything starts.
 */
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tmpDir } from '@hsmlab/testing'
import { main } from '../src/index.js'

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
