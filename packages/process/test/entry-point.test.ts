/**
 * `isEntryPoint` and `exitWhenDone`, as a server bin uses them. Goal: a bin runs when started
 * directly, through its launcher or through a symbolic link to either, and not when imported; a
 * real SIGTERM or SIGINT stops it with exit 0, a failure to stop gives exit 1, and a handle left
 * open does not keep it alive. Method: a small server bin written into a temporary directory
 * (`src/fixture.js` and its launcher `bin/fixture.js`, importing this package's built `dist/`),
 * run with node. Build first (`npx tsc -b`).
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { spawnNode, spawnProcess, tmpDir, waitFor } from '@hsmlab/testing'
import { isEntryPoint } from '../src/index.js'

const DIST = new URL('../dist/index.js', import.meta.url).href

const FIXTURE = `
import { createServer } from 'node:net'
import { exitWhenDone, isEntryPoint, runServer } from '${DIST}'

const program = {
  name: 'hsmlab-fixture',
  what: 'fixture',
  usage: 'usage: hsmlab-fixture [--fail-stop] [--linger]',
  parse: argv => ({ failStop: argv.includes('--fail-stop'), linger: argv.includes('--linger') }),
  createLogger: () => ({ info () {}, error () {}, fatal () {} }),
  start: async options => {
    const server = createServer()
    await new Promise(resolve => { server.listen(0, '127.0.0.1', resolve) })
    return {
      port: server.address().port,
      stop: async () => {
        await new Promise(resolve => { server.close(resolve) })
        if (options.linger) setInterval(() => {}, 60_000)
        if (options.failStop) throw new Error('a socket hung')
      }
    }
  },
  ready: server => ({ port: server.port })
}

if (isEntryPoint(import.meta.url, new URL('../bin/fixture.js', import.meta.url))) exitWhenDone(program.name, runServer(program, process.argv.slice(2)))
`

interface Layout { dir: string, module: string, launcher: string, moduleLink: string, launcherLink: string }

function layout (): Layout {
  const dir = tmpDir('hsmlab-process-')
  mkdirSync(join(dir, 'src'))
  mkdirSync(join(dir, 'bin'))
  mkdirSync(join(dir, 'links'))
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n')
  const module = join(dir, 'src', 'fixture.js')
  const launcher = join(dir, 'bin', 'fixture.js')
  writeFileSync(module, FIXTURE)
  writeFileSync(launcher, "import '../src/fixture.js'\n")
  const moduleLink = join(dir, 'links', 'hsmlab-fixture-module')
  const launcherLink = join(dir, 'links', 'hsmlab-fixture')
  symlinkSync(module, moduleLink)
  symlinkSync(launcher, launcherLink)
  return { dir, module, launcher, moduleLink, launcherLink }
}

async function readyPort (child: ReturnType<typeof spawnNode>): Promise<number> {
  const line = await waitFor(() => child.stdout().includes('\n') ? child.stdout() : undefined, { what: 'ready line' })
  const ready = JSON.parse(line) as { event: string, pid: number, port: number }
  expect(ready).toEqual({ event: 'ready', pid: child.child.pid, port: expect.any(Number) })
  return ready.port
}

describe('isEntryPoint', () => {
  it('is true for the module, its launcher, and symbolic links to either; false otherwise', () => {
    const l = layout()
    const url = pathToFileURL(l.module).href
    const launcher = pathToFileURL(l.launcher)
    for (const script of [l.module, l.launcher, l.moduleLink, l.launcherLink]) {
      expect(isEntryPoint(url, launcher, script), script).toBe(true)
    }
    expect(isEntryPoint(url, undefined, l.launcherLink), 'no launcher given').toBe(false)
    expect(isEntryPoint(url, undefined, l.moduleLink)).toBe(true)
    expect(isEntryPoint(url, launcher, join(l.dir, 'package.json')), 'another file').toBe(false)
    expect(isEntryPoint(url, launcher, join(l.dir, 'missing.js')), 'a file that is not there').toBe(false)
    expect(isEntryPoint(url, join(l.dir, 'bin', 'missing.js'), l.launcher), 'a launcher that is not there').toBe(false)
    expect(isEntryPoint(url, launcher, undefined), 'no script (node -e)').toBe(false)
  })
})

/** Starts the fixture, waits for its ready line, sends `signal`, and answers how it ended. */
async function runUntil (signal: NodeJS.Signals, script: string, args: string[] = []): Promise<{ code: number | string, stdout: string, stderr: string }> {
  const child = spawnNode(script, args, { name: 'fixture' })
  await readyPort(child)
  child.child.kill(signal)
  const code = await child.exited
  return { code, stdout: child.stdout(), stderr: child.stderr() }
}

describe('a server bin started as a process', () => {
  it('runs through a link to its launcher, prints one ready line, and exits 0 on SIGTERM', async () => {
    const ended = await runUntil('SIGTERM', layout().launcherLink)
    expect(ended.code).toBe(0)
    expect(ended.stdout.trim().split('\n')).toHaveLength(1)
    expect(ended.stderr).toBe('')
  })

  it('runs through a link to the module itself, and exits 0 on SIGINT', async () => {
    expect((await runUntil('SIGINT', layout().moduleLink)).code).toBe(0)
  })

  it('exits 1 saying so when stopping fails', async () => {
    const ended = await runUntil('SIGTERM', layout().launcher, ['--fail-stop'])
    expect(ended.code).toBe(1)
    expect(ended.stderr).toBe('hsmlab-fixture: stopping failed: a socket hung\n')
  })

  it('leaves with its exit code even when a handle stays open after stop', async () => {
    expect((await runUntil('SIGTERM', layout().launcher, ['--linger'])).code).toBe(0)
  })

  it('does nothing when imported', async () => {
    const l = layout()
    const child = spawnProcess(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(l.module).href)})`], { name: 'importer' })
    expect(await child.exited).toBe(0)
    expect(child.stdout()).toBe('')
    expect(child.stderr()).toBe('')
  })
})
