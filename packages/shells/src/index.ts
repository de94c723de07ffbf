/**
 * @packageDocumentation
 * The management shells: `cloudhsm_mgmt_util` (CMU) and `key_mgmt_util` (KMU), on top of the
 * client library. Each is a `run*(argv, streams)` function that returns an exit code, so that it
 * can be tested in-process and run as a process by a thin bin.
 *
 * @example
 * ```ts
 * import { runCmu } from '@hsmlab/shells'
 * const code = await runCmu(['.hsmlab/us-east-1-primary.cfg'], { input: process.stdin, output: process.stdout })
 * ```
 */
export { ConsoleIo } from './console-io.js'
export type { ConsoleStreams } from './console-io.js'
export { runCmu } from './cmu/cmu-shell.js'
export { runKmu } from './kmu/kmu-shell.js'
