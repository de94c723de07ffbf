/**
 * The life of a server process, written once for every bin (`hsmlab-hsm`, `hsmlab-control-plane`,
 * `hsmlab-hsm-host`, `hsmlab-fault-proxy`): parse the command line, start, announce readiness on
 * stdout with one JSON line, wait to be asked to stop, stop, and answer the exit code. A bin
 * describes itself as a `ServerProgram`; its `main(argv, io)` is `runServer(program, argv, io)`,
 * callable in process (tests pass `io.stopRequested`) as well as from the command line.
 */

/** Where `main` writes and what stops it; `processIo()` gives the process's. */
export interface MainIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** Resolves when the server should stop. @default the first SIGTERM or SIGINT (`stopSignals()`) */
  stopRequested?: Promise<unknown>
}

/** The part of a logger `runServer` writes to; a pino logger is one. */
export interface ProcessLogger {
  info: (fields: object, message: string) => void
  error: (fields: object, message: string) => void
  fatal: (fields: object, message: string) => void
}

/** What `runServer` stops: anything with `stop()` (the lifecycle contract of every server). */
export interface Stoppable {
  stop: () => Promise<void>
}

/** One server bin, described for `runServer`. */
export interface ServerProgram<Options, Server extends Stoppable, Logger extends ProcessLogger = ProcessLogger> {
  /** The bin's name, first on every line it writes on stderr (`hsmlab-hsm: …`). */
  name: string
  /** What runs, as its log lines say it (`HSM` → "HSM failed to start"). */
  what: string
  /** The usage line, printed for `--help` on stdout and after a bad command line on stderr. */
  usage: string
  /** Reads the command line: the options, or 'help'. Anything it throws is a usage error (exit 1). */
  parse: (argv: string[]) => Options | 'help'
  /** Makes the root logger, once the command line is good; `start` is given it. */
  createLogger: (options: Options) => Logger
  /** The logger the bin's own lines (start failed, stop requested, stop failed) go to. @default the root logger */
  binLogger?: (logger: Logger) => ProcessLogger
  /** Starts the server; it is listening when this resolves. */
  start: (options: Options, logger: Logger) => Promise<Server>
  /** The ready line's fields after `event` and `pid` (`{ port: … }`), also logged with "stop requested". */
  ready: (server: Server) => Record<string, unknown>
  /** The exit code of a failure to start. @default 1 */
  startFailureExitCode?: (err: unknown) => number
}

const EXIT_OK = 0
const EXIT_FAILURE = 1

/** The process's own stdout and stderr, and the first SIGTERM or SIGINT as the stop request. */
export function processIo (): MainIo {
  return {
    stdout: text => { process.stdout.write(text) },
    stderr: text => { process.stderr.write(text) }
  }
}

/** Resolves with the name of the first SIGTERM or SIGINT; later ones are Node's again. */
export function stopSignals (): Promise<string> {
  return new Promise(resolve => {
    const onSignal = (signal: string): void => {
      process.off('SIGTERM', onSignal)
      process.off('SIGINT', onSignal)
      resolve(signal)
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
  })
}

/**
 * Runs one server until it is asked to stop; resolves with the process's exit code: 0 after
 * `--help` or a clean stop; 1 for a bad command line (the message, then the usage, on stderr), a
 * failure to start (`<name>: [CODE] message` on stderr, the code when the error has one; the exit
 * code is `startFailureExitCode`'s) or a failure to stop (`<name>: stopping failed: message`).
 * Once the server listens it prints `{"event":"ready","pid":…,…ready(server)}` on stdout, and
 * nothing else there.
 */
export async function runServer<Options, Server extends Stoppable, Logger extends ProcessLogger> (
  program: ServerProgram<Options, Server, Logger>, argv: string[], io: MainIo = processIo()
): Promise<number> {
  let options
  try {
    options = program.parse(argv)
  } catch (err) {
    io.stderr(`${program.name}: ${(err as Error).message}\n${program.usage}\n`)
    return EXIT_FAILURE
  }
  if (options === 'help') {
    io.stdout(`${program.usage}\n`)
    return EXIT_OK
  }
  const logger = program.createLogger(options)
  const log = program.binLogger?.(logger) ?? logger
  let server
  try {
    server = await program.start(options, logger)
  } catch (err) {
    const code = (err as { code?: unknown }).code
    log.fatal({ err }, `${program.what} failed to start`)
    io.stderr(`${program.name}: ${typeof code === 'string' ? `[${code}] ` : ''}${(err as Error).message}\n`)
    return program.startFailureExitCode?.(err) ?? EXIT_FAILURE
  }
  // Listened for only once the server runs: a signal before then ends the process as Node does.
  const stopRequested = io.stopRequested ?? stopSignals()
  const fields = program.ready(server)
  io.stdout(`${JSON.stringify({ event: 'ready', pid: process.pid, ...fields })}\n`)
  const reason = await stopRequested
  log.info({ reason, ...fields }, 'stop requested')
  try {
    await server.stop()
  } catch (err) {
    log.error({ err }, `${program.what} failed to stop cleanly`)
    io.stderr(`${program.name}: stopping failed: ${(err as Error).message}\n`)
    return EXIT_FAILURE
  }
  return EXIT_OK
}
