/**
 * @packageDocumentation
 * Running hsmlab's server processes: entry point, ready line, stop on signals, and files written
 * atomically for their state (`writeFileAtomic`), whether a pid is alive, and the lock file that
 * keeps a directory to one process (`takePidLock`), and the structured logger every process uses.
 * Each server bin
 * (`hsmlab-hsm`, `hsmlab-control-plane`, `hsmlab-hsm-host`, `hsmlab-fault-proxy`) describes how to
 * parse its command line, start, and what its ready line says; `runServer` does the rest the same
 * way for all of them, and `main(argv, io)` stays callable in process.
 *
 * @example
 * ```ts
 * import { UsageError, exitWhenDone, isEntryPoint, runServer } from '@hsmlab/process'
 * import type { MainIo } from '@hsmlab/process'
 *
 * const program = {
 *   name: 'hsmlab-echo', what: 'echo server', usage: 'usage: hsmlab-echo [--port 0]',
 *   parse: (argv: string[]) => { if (argv.length > 0) throw new UsageError(`unexpected ${argv[0]}`); return { port: 0 } },
 *   createLogger: () => pino(),
 *   start: async (options: { port: number }) => await startEcho(options),
 *   ready: (server: EchoServer) => ({ port: server.port })   // {"event":"ready","pid":…,"port":…}
 * }
 * export async function main (argv: string[], io?: MainIo): Promise<number> { return await runServer(program, argv, io) }
 * if (isEntryPoint(import.meta.url, new URL('../../bin/echo.js', import.meta.url))) exitWhenDone(program.name, main(process.argv.slice(2)))
 * ```
 */
export { fsyncDir, writeFileAtomic } from './atomic-file.js'
export type { AtomicWriteOptions } from './atomic-file.js'
export { PROCESS_ERR_USAGE, ProcessError, UsageError } from './errors.js'
export { EXIT_GRACE_MS, exitWhenDone, isEntryPoint } from './entry-point.js'
export { LOG_LEVELS, componentLoggers, createLogger, silentLogger } from './logger.js'
export type { LevelWithSilent, Logger, LoggerOptions } from './logger.js'
export { takePidLock } from './pid-lock.js'
export type { PidLock } from './pid-lock.js'
export { isProcessAlive } from './process-alive.js'
export { processIo, runServer, stopSignals } from './server-program.js'
export type { MainIo, ProcessLogger, ServerProgram, Stoppable } from './server-program.js'
