// Baseline peer for the round-trip benchmark: a bare WebSocket echo server in its own process,
// announcing its port on stdout like the HSM does.
import { WebSocketServer } from 'ws'

const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
server.on('connection', socket => {
  socket.on('message', data => { socket.send(data) })
})
server.on('listening', () => {
  process.stdout.write(JSON.stringify({ event: 'ready', pid: process.pid, port: server.address().port }) + '\n')
})
process.on('SIGTERM', () => { server.close(); process.exit(0) })
