/**
 * Issue 9 §1: the shells' command and flag tables answer only their own entries. Every name a
 * plain JavaScript object inherits (`constructor`, `__proto__`, `toString`, ...), typed as a
 * command, as `help`'s argument or as a flag, gets the documented unknown-command error or the
 * usage, sends nothing to any HSM, and the session goes on. The same names through the real
 * processes: test/e2e/issue-9-shells.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { resolveAbbreviation } from '../src/abbreviation.js'
import { parseFlags } from '../src/kmu/kmu-args.js'
import { KmuSession } from '../src/kmu/kmu-session.js'
import { FakeHsm, runSession } from './cmu-fake.js'
import { captureIo, fakeCluster } from './kmu-fake-cluster.js'

const INHERITED = Object.getOwnPropertyNames(Object.prototype)

let dir: string
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'shells-names-')) })
afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

describe('inherited names', () => {
  it('are no abbreviation of any command', () => {
    for (const name of INHERITED) expect(resolveAbbreviation(name, ['listUsers', 'loginHSM', 'quit'])).toEqual({ kind: 'unknown' })
  })

  it('are no KMU flag', () => {
    for (const name of INHERITED) {
      expect(parseFlags([`-${name}`, '1'], [{ flag: '-k', kind: 'int', what: 'Key handle' }])).toEqual({ ok: false, error: '', usage: true })
    }
  })

  it('KMU: an unknown command as a command, the usage as a flag; nothing sent', async () => {
    for (const name of INHERITED) {
      const { cluster, calls } = fakeCluster(() => ({}))
      const io = captureIo()
      const session = new KmuSession(cluster, io, { cwd: dir })
      expect(await session.execute([name])).toEqual({ exit: false, code: -1 })
      expect(io.text()).toBe(`\n\tError: Unknown command '${name}'. Type help for the list of commands.\n`)
      expect((await session.execute(['genSymKey', '-t', '31', '-s', '16', '-l', 'k', `-${name}`, '1'])).code).toBe(-1)
      expect(io.text()).toContain('Syntax: genSymKey -h -t <key type> -s <key size> -l <label>')
      expect(calls).toEqual([])
    }
  })

  it('CMU: an unknown command, at the prompt and for help; the session goes on', async () => {
    const input = INHERITED.flatMap(name => [name, `help ${name}`, `${name} -h`]).join('\n') + '\nlistUsers\nquit\n'
    const r = await runSession([new FakeHsm('hsm-abcdefghij0')], input)
    for (const name of INHERITED) {
      expect(r.out).toContain(`aws-cloudhsm>${name}\nUnknown command '${name}'. Type 'help' for the list of commands.\n`)
      expect(r.out).toContain(`aws-cloudhsm>help ${name}\nError: there is no command '${name}'\n`)
      expect(r.out).toContain(`aws-cloudhsm>${name} -h\nUnknown command '${name}'.`)
    }
    expect(r.out).toContain('aws-cloudhsm>listUsers\nUsers on server 0(10.0.0.1):\n')
    expect(r.code).toBe(0)
    expect(r.calls.filter(c => c.op !== 'listUsers')).toEqual([])
  })
})
