import { createInterface } from 'node:readline'
import type { Interface } from 'node:readline'

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

  constructor (streams: ConsoleStreams) {
    this.output = streams.output
    const terminal = streams.terminal ?? ((streams.output as { isTTY?: boolean }).isTTY === true)
    this.rl = createInterface({ input: streams.input, output: terminal ? streams.output : undefined, terminal })
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
    this.output.write(prompt)
    const queued = this.lines.shift()
    if (queued !== undefined) return queued
    if (this.ended) return undefined
    return await new Promise(resolve => { this.waiters.push(resolve) })
  }

  /** Stops reading input. */
  close (): void {
    this.rl.close()
  }
}
