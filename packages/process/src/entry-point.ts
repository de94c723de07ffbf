/**
 * The tail of every server bin: is this module the program, and if so, run `main` and leave with
 * its exit code.
 *
 *   if (isEntryPoint(import.meta.url, LAUNCHER)) exitWhenDone('hsmlab-x', main(process.argv.slice(2)))
 */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** How long a process whose `main` has finished may take to leave by itself, in milliseconds. */
export const EXIT_GRACE_MS = 1_000

function realpathOf (file: string | URL): string | undefined {
  try {
    return realpathSync(typeof file === 'string' && file.startsWith('file:') ? fileURLToPath(file) : file)
  } catch {
    return undefined
  }
}

/**
 * True when the module at `moduleUrl` (pass `import.meta.url`) is the program Node was started
 * with: started directly, through its committed `launcher` (a file that only imports the module,
 * there so npm can link the bin before the first build), or through a symbolic link to either
 * (what `npx` and `node_modules/.bin` run). False when the module is imported, as tests do.
 *
 * @param script the file Node was started with. @default process.argv[1]
 */
export function isEntryPoint (moduleUrl: string | URL, launcher?: string | URL, script: string | undefined = process.argv[1]): boolean {
  if (script === undefined) return false
  const started = realpathOf(script)
  if (started === undefined) return false
  return started === realpathOf(moduleUrl) || (launcher !== undefined && started === realpathOf(launcher))
}

/**
 * Sets the exit code `running` resolves with and lets the process end; if a stray handle keeps the
 * event loop alive, leaves anyway after `EXIT_GRACE_MS` (everything is closed by then). If
 * `running` rejects, prints the stack after `name:` on stderr and exits 1.
 */
export function exitWhenDone (name: string, running: Promise<number>): void {
  running.then(code => {
    process.exitCode = code
    setTimeout(() => { process.exit(code) }, EXIT_GRACE_MS).unref()
  }, (err: unknown) => {
    process.stderr.write(`${name}: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
