/**
 * The key_mgmt_util bin: `key_mgmt_util [--config CFG] [singlecmd ...]`. A thin `main` behind an
 * entry-point guard; the shell itself is `runKmu` (kmu/kmu-shell.ts), testable in-process.
 */
import { realpathSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runKmu } from '../kmu/kmu-shell.js'

/** Runs key_mgmt_util on the process's standard streams; resolves with the exit code. */
export async function main (argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  return await runKmu(argv, { input: process.stdin, output: process.stdout, error: process.stderr })
}

/** True when this process was started as key_mgmt_util: this file, or the package's launcher that imports it. */
function isEntryPoint (): boolean {
  const started = process.argv[1]
  if (started === undefined) return false
  const self = fileURLToPath(import.meta.url)
  const launcher = resolve(dirname(self), '../../bin/key_mgmt_util.js')
  try {
    const real = realpathSync(started)
    return real === self || real === launcher
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  main().then(code => {
    // Leave once everything written has been handed to the OS: stdin may still hold the loop open.
    process.stdout.write('', () => process.exit(code))
  }, (err: unknown) => {
    process.stderr.write(`key_mgmt_util: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
