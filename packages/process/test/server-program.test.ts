/**
 * `runServer` in process: help, usage errors, a failure to start with its code and exit code, the
 * ready line, stop on request, a failure to stop, and the SIGTERM/SIGINT stop request.
 */
import { describe, expect, it } from 'vitest'
import { UsageError, PROCESS_ERR_USAGE, runServer, stopSignals } from '../src/index.js'
import type { MainIo, ServerProgram, Stoppable } from '../src/index.js'

interface Options { failStart?: Error, failStop?: Error }
interface FakeServer extends Stoppable { port: number, stopped: number }

function harness (): { io: Required<Omit<MainIo, 'stopRequested'>>, out: () => string, err: () => string, logs: Array<[string, object, string]> } {
  let out = ''
  let err = ''
  const logs: Array<[string, object, string]> = []
  return { io: { stdout: t => { out += t }, stderr: t => { err += t } }, out: () => out, err: () => err, logs }
}

function program (logs: Array<[string, object, string]>, servers: FakeServer[] = []): ServerProgram<Options, FakeServer> {
  return {
    name: 'hsmlab-fake',
    what: 'fake server',
    usage: 'usage: hsmlab-fake [--fail-start] [--fail-stop]',
    parse: argv => {
      if (argv.includes('--help')) return 'help'
      const unknown = argv.find(a => a !== '--fail-start' && a !== '--fail-stop' && a !== '--fail-data')
      if (unknown !== undefined) throw new UsageError(`unknown flag ${unknown}`)
      if (argv.includes('--fail-data')) return { failStart: Object.assign(new Error('the data cannot be loaded'), { code: 'FAKE_ERR_DATA' }) }
      return {
        ...(argv.includes('--fail-start') ? { failStart: new Error('no port for you') } : {}),
        ...(argv.includes('--fail-stop') ? { failStop: new Error('a socket hung') } : {})
      }
    },
    createLogger: () => ({
      info: (fields, message) => { logs.push(['info', fields, message]) },
      error: (fields, message) => { logs.push(['error', fields, message]) },
      fatal: (fields, message) => { logs.push(['fatal', fields, message]) }
    }),
    start: async options => {
      if (options.failStart !== undefined) throw options.failStart
      const server: FakeServer = {
        port: 4321,
        stopped: 0,
        stop: async () => {
          server.stopped++
          if (options.failStop !== undefined) throw options.failStop
        }
      }
      servers.push(server)
      return server
    },
    ready: server => ({ port: server.port }),
    startFailureExitCode: err => (err as { code?: unknown }).code === 'FAKE_ERR_DATA' ? 2 : 1
  }
}

describe('runServer', () => {
  it('prints the usage for --help on stdout, exit 0, and starts nothing', async () => {
    const h = harness()
    const servers: FakeServer[] = []
    expect(await runServer(program(h.logs, servers), ['--help'], h.io)).toBe(0)
    expect(h.out()).toBe('usage: hsmlab-fake [--fail-start] [--fail-stop]\n')
    expect(h.err()).toBe('')
    expect(servers).toEqual([])
  })

  it('prints what is wrong with the command line, then the usage, on stderr: exit 1', async () => {
    const h = harness()
    expect(await runServer(program(h.logs), ['--bogus'], h.io)).toBe(1)
    expect(h.err()).toBe('hsmlab-fake: unknown flag --bogus\nusage: hsmlab-fake [--fail-start] [--fail-stop]\n')
    expect(h.out()).toBe('')
    expect(new UsageError('x').code).toBe(PROCESS_ERR_USAGE)
  })

  it('names the code of a failure to start, logs it, and exits with the code the program gives', async () => {
    const h = harness()
    expect(await runServer(program(h.logs), ['--fail-data'], h.io)).toBe(2)
    expect(h.err()).toBe('hsmlab-fake: [FAKE_ERR_DATA] the data cannot be loaded\n')
    expect(h.out()).toBe('')
    expect(h.logs.map(([level, , message]) => [level, message])).toEqual([['fatal', 'fake server failed to start']])

    const plain = harness()
    expect(await runServer(program(plain.logs), ['--fail-start'], plain.io)).toBe(1)
    expect(plain.err()).toBe('hsmlab-fake: no port for you\n')
  })

  it('prints one ready line, stops the server when asked, and exits 0', async () => {
    const h = harness()
    const servers: FakeServer[] = []
    let stop: (reason: string) => void = () => {}
    const stopRequested = new Promise<string>(resolve => { stop = resolve })
    const running = runServer(program(h.logs, servers), [], { ...h.io, stopRequested })
    await expect.poll(() => h.out()).not.toBe('')
    expect(h.out()).toBe(`${JSON.stringify({ event: 'ready', pid: process.pid, port: 4321 })}\n`)
    expect(servers[0]?.stopped).toBe(0)
    stop('test')
    expect(await running).toBe(0)
    expect(servers[0]?.stopped).toBe(1)
    expect(h.err()).toBe('')
    expect(h.logs).toEqual([['info', { reason: 'test', port: 4321 }, 'stop requested']])
  })

  it('says a failure to stop on stderr: exit 1', async () => {
    const h = harness()
    expect(await runServer(program(h.logs), ['--fail-stop'], { ...h.io, stopRequested: Promise.resolve('test') })).toBe(1)
    expect(h.err()).toBe('hsmlab-fake: stopping failed: a socket hung\n')
    expect(h.logs.map(([level, , message]) => [level, message])).toEqual([['info', 'stop requested'], ['error', 'fake server failed to stop cleanly']])
  })
})

describe('stopSignals', () => {
  // Emitting a signal in the test worker would reach the runner's own handlers too; the handler
  // stopSignals adds is called directly instead (a real SIGTERM is in entry-point.test.ts).
  it('resolves with the first SIGTERM or SIGINT, and gives both back', async () => {
    const before = { SIGTERM: process.listenerCount('SIGTERM'), SIGINT: process.listenerCount('SIGINT') }
    const stopped = stopSignals()
    expect(process.listenerCount('SIGTERM')).toBe(before.SIGTERM + 1)
    expect(process.listenerCount('SIGINT')).toBe(before.SIGINT + 1)
    const handler = process.listeners('SIGINT').at(-1) as (signal: string) => void
    handler('SIGINT')
    expect(await stopped).toBe('SIGINT')
    expect(process.listenerCount('SIGTERM')).toBe(before.SIGTERM)
    expect(process.listenerCount('SIGINT')).toBe(before.SIGINT)
  })
})
