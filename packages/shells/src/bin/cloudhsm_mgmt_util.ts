/**
 * The `cloudhsm_mgmt_util` command: `cloudhsm_mgmt_util CONFIG`. A thin `main` around `runCmu`;
 * the committed launcher bin/cloudhsm_mgmt_util.js imports this file, so the entry-point guard
 * accepts being started directly or through that launcher (or a symlink to either).
 */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { runCmu } from '../cmu/cmu-shell.js'

/** Runs CMU on the process's standard streams and resolves with its exit code. */
export async function main (argv: string[]): Promise<number> {
  return await runCmu(argv, { input: process.stdin, output: process.stdout })
}

function isEntryPoint (): boolean {
  const started = process.argv[1]
  if (started === undefined) return false
  let path: string
  try {
    path = realpathSync(started)
  } catch {
    return false
  }
  const self = fileURLToPath(import.meta.url)
  const launcher = fileURLToPath(new URL('../../bin/cloudhsm_mgmt_util.js', import.meta.url))
  return path === self || path === launcher
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(code => {
    // Leave once the output is flushed, whatever handles (stdin) are still open.
    process.stdout.write('', () => process.exit(code))
  }, (err: unknown) => {
    process.stderr.write(`cloudhsm_mgmt_util: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
