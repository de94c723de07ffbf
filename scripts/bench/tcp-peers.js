// Upstream peers of the fault-proxy benchmark, in a process of their own: a TCP echo server (for
// round trips) and a sink that counts what it receives and answers "done" at the client's FIN
// (for throughput). Prints one ready line: {"event":"ready","pid":…,"echoPort":…,"sinkPort":…}.
import { createServer } from 'node:net'

const echo = createServer({ noDelay: true }, socket => {
  socket.setNoDelay(true)
  socket.on('data', chunk => { socket.write(chunk) })
  socket.on('error', () => {})
})
const sink = createServer({ allowHalfOpen: true }, socket => {
  let bytes = 0
  socket.on('data', chunk => { bytes += chunk.length })
  socket.on('end', () => { socket.end(`done ${bytes}`) })
  socket.on('error', () => {})
})
await new Promise(resolve => echo.listen(0, '127.0.0.1', resolve))
await new Promise(resolve => sink.listen(0, '127.0.0.1', resolve))
process.stdout.write(JSON.stringify({ event: 'ready', pid: process.pid, echoPort: echo.address().port, sinkPort: sink.address().port }) + '\n')
process.on('SIGTERM', () => { process.exit(0) })
