import { createInterface } from 'node:readline'
import type { Interface } from 'node:readline'
import { Writable } from 'node:stream'

/** Where a shell reads its commands and answers and writes its output. */
export interface ConsoleStreams {
  input: NodeJS.ReadableStream
  output: NodeJS.WritableStream
  /** Treat input as a person at a terminal (echo, line editing). @default output is a TTY */
  terminal?: boolean
}

/**
 * Line input for the shells. Commands and the answers to prompts (y/n, passwords) come from
 * the same stream, in order, so that a lab can pipe a whole session into a shell when standard
 * input is not a terminal — the DESIGN's "every lab can be scripted".
 */
export class ConsoleIo {
  private readonly rl: Interface
  private readonly output: NodeJS.WritableStream
  private readonly lines: string[] = []
  private readonly waiters: Array<(line: string | undefined) => void> = []
  private ended = false
  private muted = false
  /** True when input is treated as a person at a terminal (readline echoes what is typed). */
  readonly terminal: boolean

  constructor (streams: ConsoleStreams) {
    this.output = streams.output
    const terminal = streams.terminal ?? ((streams.output as { isTTY?: boolean }).isTTY === true)
    this.terminal = terminal
    this.rl = createInterface({ input: streams.input, output: terminal ? this.echoStream(streams.output) : undefined, terminal })
    // Ctrl-C at a terminal ends the input like Ctrl-D, so the shell leaves the way it does at EOF.
    this.rl.on('SIGINT', () => { this.rl.close() })
    this.rl.on('line', line => {
      const waiter = this.waiters.shift()
      if (waiter !== undefined) waiter(line)
      else this.lines.push(line)
    })
    this.rl.on('close', () => {
      this.ended = true
      for (const waiter of this.waiters.splice(0)) waiter(undefined)
    })
  }

  /** Writes text as it is. */
  write (text: string): void {
    this.output.write(text)
  }

  /** Writes text and a newline. */
  println (text = ''): void {
    this.output.write(`${text}\n`)
  }

  /** Prints `prompt` (no newline) and resolves with the next line, or undefined at end of input. */
  async readLine (prompt: string): Promise<string | undefined> {
    if (this.terminal) {
      // Through readline, so that line editing redraws this prompt and not readline's default '> '.
      this.rl.setPrompt(prompt)
      this.rl.prompt(true)
    } else {
      this.output.write(prompt)
    }
    const queued = this.lines.shift()
    if (queued !== undefined) return queued
    if (this.ended) return undefined
    return await new Promise(resolve => { this.waiters.push(resolve) })
  }

  /**
   * Like `readLine`, but what is typed is not shown (passwords: `-hpswd`). At a terminal the echo
   * is muted and a newline is written after the answer; otherwise nothing is echoed anyway.
   */
  async readSecret (prompt: string): Promise<string | undefined> {
    const answer = this.readLine(prompt)
    this.muted = true
    try {
      return await answer
    } finally {
      this.muted = false
      if (this.terminal) this.output.write('\n')
    }
  }

  /** What readline echoes goes through here, so that `readSecret` can mute it. */
  private echoStream (output: NodeJS.WritableStream): NodeJS.WritableStream {
    const tty = output as { columns?: number, rows?: number }
    const echo = new Writable({
      write: (chunk: Buffer | string, _encoding, callback) => {
        if (!this.muted) output.write(chunk)
        callback()
      }
    })
    Object.defineProperty(echo, 'columns', { get: () => tty.columns })
    Object.defineProperty(echo, 'rows', { get: () => tty.rows })
    return echo
  }

  /** Stops reading input. */
  close (): void {
    this.rl.close()
  }
}
