/**
 * key_mgmt_util's invocation: configuration lookup, the error when no HSM can be reached, and how
 * a singlecmd command line is split. Runs `runKmu` in-process on in-memory streams.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { writeCmuConfig } from '@hsmlab/client'
import { encodeTrustAnchor, generateSigningKeyPair } from '@hsmlab/crypto'
import { runKmu, splitKmuLine, splitSingleCommand } from '../src/kmu/kmu-shell.js'

let dir: string
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'kmu-shell-')) })
afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

async function kmu (argv: string[], input = ''): Promise<{ code: number, out: string, err: string }> {
  const stdin = new PassThrough()
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.on('data', (c: Buffer) => { out += c.toString() })
  stderr.on('data', (c: Buffer) => { err += c.toString() })
  stdin.end(input)
  const code = await runKmu(argv, { input: stdin, output: stdout, error: stderr, cwd: dir, terminal: false })
  return { code, out, err }
}

/** A port nothing listens on. */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>(resolve => server.close(() => { resolve() }))
  return port
}

describe('runKmu', () => {
  it('without --config and without a lab, says to run hsmlab up and exits 1', async () => {
    const { code, err } = await kmu([])
    expect(code).toBe(1)
    expect(err).toContain('./.hsmlab/key_mgmt_util.cfg does not exist')
    expect(err).toContain('npx hsmlab up')
    expect(err).toContain('--config')
  })

  it('reports an unreadable --config file', async () => {
    const { code, err } = await kmu(['--config', 'nope.cfg'])
    expect(code).toBe(1)
    expect(err).toContain('nope.cfg')
  })

  it('prints a Daemon socket connection error when no HSM can be reached', async () => {
    const anchor = join(dir, 'customerCA.crt')
    writeFileSync(anchor, encodeTrustAnchor(generateSigningKeyPair().publicKey))
    mkdirSync(join(dir, '.hsmlab'))
    const port = await closedPort()
    await writeCmuConfig(join(dir, '.hsmlab', 'key_mgmt_util.cfg'), [{ name: 'hsm0', hostname: '127.0.0.1', port, caFile: anchor, enabled: true }])
    const { code, err } = await kmu(['singlecmd', 'Error2String', '-r', '0xdb'])
    expect(code).toBe(1)
    expect(err).toContain('Daemon socket connection error')
    expect(err).toContain(`server 0 (hsm0, 127.0.0.1:${port})`)
  })

  it('refuses arguments it does not know', async () => {
    const { code, err } = await kmu(['genSymKey'])
    expect(code).toBe(1)
    expect(err).toContain('unknown command line arguments: genSymKey')
    expect(err).toContain('Usage: key_mgmt_util')
  })
})

describe('command lines', () => {
  it('splits on spaces like the real tool, and keeps quoted words together', () => {
    expect(splitKmuLine('  genSymKey -t 31\t-s 16 -l my key ')).toEqual({ ok: true, words: ['genSymKey', '-t', '31', '-s', '16', '-l', 'my', 'key'] })
    expect(splitKmuLine('genSymKey -l "my key"')).toEqual({ ok: true, words: ['genSymKey', '-l', 'my key'] })
  })

  it('takes a leading loginHSM with its flags off a singlecmd line', () => {
    expect(splitSingleCommand(['loginHSM', '-u', 'CU', '-s', 'user', '-p', 'pwd', 'genSymKey', '-t', '31'])).toEqual({
      login: ['loginHSM', '-u', 'CU', '-s', 'user', '-p', 'pwd'], command: ['genSymKey', '-t', '31']
    })
    expect(splitSingleCommand(['loginHSM', '-u', 'CU', '-hpswd', '-s', 'user', 'findKey'])).toEqual({
      login: ['loginHSM', '-u', 'CU', '-hpswd', '-s', 'user'], command: ['findKey']
    })
    expect(splitSingleCommand(['findKey', '-l', 'x'])).toEqual({ login: [], command: ['findKey', '-l', 'x'] })
  })
})
