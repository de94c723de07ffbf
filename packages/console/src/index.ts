/**
 * @packageDocumentation
 * The lab's web console (docs/console.md): one process per lab, on 127.0.0.1 behind a random
 * token, showing live what the control planes, the HSMs (read as the lab's CO), the fault proxy
 * and the synchronisation tasks say, and driving them: faults, backups and copies, the seed-003
 * Cross-region Synchronization procedures, scenario reports, and a terminal for exercises.
 * `hsmlab up` starts it (`hsmlab-console`); the lab does not import this package, this package
 * reads the lab.
 *
 * @example
 * ```ts
 * import { startConsole } from '@hsmlab/console'
 * const web = await startConsole({ labDir: '/tmp/lab', dataDir: '/tmp/lab/console' })
 * web.url   // http://127.0.0.1:<port>/?token=…, what a person opens
 * await web.stop()
 * ```
 */
export { startConsole } from './server.js'
export type { Console, ConsoleOptions } from './server.js'
export { Guard } from './guard.js'
export type { Verdict } from './guard.js'
export { consoleDefaults } from './defaults.js'
export { ConsoleError, CONSOLE_ERROR_CODES, CONSOLE_ERR_LAB, CONSOLE_ERR_LISTEN, CONSOLE_ERR_REQUEST } from './errors.js'
export { main } from './bin/console.js'
