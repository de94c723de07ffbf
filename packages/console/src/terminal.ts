/**
 * The page's terminal: bash on a pseudo-terminal (node-pty) of the lab's machine, in the lab's
 * working directory, with the lab's shells (`hsmlab`, `cloudhsm_mgmt_util`, `key_mgmt_util`) and
 * the AWS CLI on its PATH, spoken to over a WebSocket by xterm.js. The server's guard has checked
 * Host, Origin (required here) and the token before `accept` is called.
 *
 * The WebSocket is the few lines RFC 6455 needs for this one use (text frames, masked from the
 * page, ping/close), not a library: the console depends on nothing beyond its page's libraries.
 * The page sends JSON text frames, `{"type":"input","data":"…"}` and
 * `{"type":"resize","cols":N,"rows":N}`; the console sends the terminal's output as text frames.
 * Closing the page's socket ends the shell (SIGHUP, as closing a terminal window does).
 */
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import type { Duplex } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type { IPty } from 'node-pty'
import { consoleDefaults } from './defaults.js'

const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** The directory holding the lab's bins (`node_modules/.bin` of the installation). */
function binDir (): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'node_modules', '.bin', 'hsmlab'))) return join(dir, 'node_modules', '.bin')
    const parent = dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

/** Encodes one unmasked frame (server to page). */
function frame (opcode: number, payload: Buffer): Buffer {
  const length = payload.length
  const header = length < 126 ? Buffer.from([0x80 | opcode, length]) : length < 65536 ? Buffer.alloc(4) : Buffer.alloc(10)
  if (length >= 126) {
    header[0] = 0x80 | opcode
    if (length < 65536) { header[1] = 126; header.writeUInt16BE(length, 2) } else { header[1] = 127; header.writeBigUInt64BE(BigInt(length), 2) }
  }
  return Buffer.concat([header, payload])
}

/** Options of `Terminals`. */
export interface TerminalsOptions {
  /** Where the shell starts. */
  cwd: string
  /** The lab directory (`HSMLAB_DIR` in the shell's environment). */
  labDir: string
  /** @default consoleDefaults.terminalsMax */
  terminalsMax?: number
}

/** The terminals open now. */
export class Terminals {
  private readonly options: TerminalsOptions
  private readonly open = new Set<{ pty: IPty, socket: Duplex }>()

  constructor (options: TerminalsOptions) {
    this.options = options
  }

  /** Completes the WebSocket handshake and starts a shell for it. */
  accept (req: IncomingMessage, socket: Duplex): void {
    const key = req.headers['sec-websocket-key']
    if (typeof key !== 'string' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
      return
    }
    if (this.open.size >= (this.options.terminalsMax ?? consoleDefaults.terminalsMax)) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
      return
    }
    const accept = createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64')
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`)
    // node-pty is loaded with the first terminal: a console nobody types into does not pay for it.
    const pty = (createRequire(import.meta.url)('node-pty') as typeof import('node-pty')).spawn('bash', ['-i'], {
      name: 'xterm-256color',
      cols: 100,
      rows: 30,
      cwd: this.options.cwd,
      env: this.environment()
    })
    const entry = { pty, socket }
    this.open.add(entry)
    pty.onData(data => { if (!socket.destroyed) socket.write(frame(0x1, Buffer.from(data, 'utf8'))) })
    pty.onExit(() => {
      this.open.delete(entry)
      if (!socket.destroyed) socket.end(frame(0x8, Buffer.from([0x03, 0xe8])))
    })
    let buffered = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      for (;;) {
        const parsed = this.nextFrame(buffered)
        if (parsed === undefined) break
        if (parsed === 'too-large') { socket.destroy(); return }
        buffered = buffered.subarray(parsed.used)
        if (parsed.opcode === 0x8) { socket.end(frame(0x8, Buffer.alloc(0))); return }
        if (parsed.opcode === 0x9) { socket.write(frame(0xa, parsed.payload)); continue }
        if (parsed.opcode === 0x1) this.onMessage(pty, parsed.payload.toString('utf8'))
      }
    })
    const end = (): void => {
      if (this.open.delete(entry)) pty.kill('SIGHUP')
    }
    socket.on('close', end)
    socket.on('error', end)
  }

  /** Ends every shell (the console stops). */
  closeAll (): void {
    for (const { pty, socket } of this.open) {
      pty.kill('SIGHUP')
      socket.destroy()
    }
    this.open.clear()
  }

  private environment (): Record<string, string> {
    const env: Record<string, string> = {}
    for (const [name, value] of Object.entries(process.env)) if (value !== undefined) env[name] = value
    const bins = binDir()
    if (bins !== undefined) env.PATH = `${bins}:${env.PATH ?? '/usr/bin:/bin'}`
    env.HSMLAB_DIR = this.options.labDir
    env.TERM = 'xterm-256color'
    return env
  }

  private onMessage (pty: IPty, text: string): void {
    let message: { type?: unknown, data?: unknown, cols?: unknown, rows?: unknown }
    try {
      message = JSON.parse(text) as typeof message
    } catch {
      return
    }
    if (message.type === 'input' && typeof message.data === 'string') pty.write(message.data)
    if (message.type === 'resize' && Number.isInteger(message.cols) && Number.isInteger(message.rows)) {
      pty.resize(Math.max(2, Math.min(500, message.cols as number)), Math.max(2, Math.min(200, message.rows as number)))
    }
  }

  /** One frame from the page (always masked), or undefined until it is whole. */
  private nextFrame (buffer: Buffer): { opcode: number, payload: Buffer, used: number } | 'too-large' | undefined {
    if (buffer.length < 2) return undefined
    const opcode = (buffer[0] as number) & 0x0f
    const masked = ((buffer[1] as number) & 0x80) !== 0
    let length = (buffer[1] as number) & 0x7f
    let at = 2
    if (length === 126) {
      if (buffer.length < 4) return undefined
      length = buffer.readUInt16BE(2)
      at = 4
    } else if (length === 127) {
      if (buffer.length < 10) return undefined
      const big = buffer.readBigUInt64BE(2)
      if (big > BigInt(consoleDefaults.webSocketFrameBytesMax)) return 'too-large'
      length = Number(big)
      at = 10
    }
    if (length > consoleDefaults.webSocketFrameBytesMax || !masked) return 'too-large'
    if (buffer.length < at + 4 + length) return undefined
    const mask = buffer.subarray(at, at + 4)
    const payload = Buffer.from(buffer.subarray(at + 4, at + 4 + length))
    for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i % 4] as number)
    return { opcode, payload, used: at + 4 + length }
  }
}
