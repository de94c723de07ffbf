/** ConsoleIo's additions CMU relies on: hidden answers at a terminal, Ctrl-C as end of input. */
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { ConsoleIo } from '../src/console-io.js'

function terminalIo (): { io: ConsoleIo, input: PassThrough, printed: () => string } {
  const input = new PassThrough()
  const output = new PassThrough()
  let text = ''
  output.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
  return { io: new ConsoleIo({ input, output, terminal: true }), input, printed: () => text }
}

describe('ConsoleIo at a terminal', () => {
  it('shows what is typed at readLine but not at readSecret', async () => {
    const { io, input, printed } = terminalIo()
    const line = io.readLine('aws-cloudhsm>')
    input.write('listUsers\r')
    expect(await line).toBe('listUsers')
    expect(printed()).toContain('aws-cloudhsm>')
    expect(printed()).toContain('listUsers')
    const before = printed().length
    const secret = io.readSecret('Enter password:')
    input.write('s3cretpw\r')
    expect(await secret).toBe('s3cretpw')
    expect(printed().slice(before)).toContain('Enter password:')
    expect(printed().slice(before)).not.toContain('s3cretpw')
    expect(printed().endsWith('\n')).toBe(true)
    io.close()
  })

  it('ends the input on Ctrl-C', async () => {
    const { io, input } = terminalIo()
    const line = io.readLine('aws-cloudhsm>')
    input.write('\x03')
    expect(await line).toBeUndefined()
  })
})
