// Issue 14 rows of npm run bench (run.js calls consoleRows): the web console of the default lab.
// - its resident memory with a page's event stream open for a few seconds (it reads the lab at
//   its fast intervals then), beside the fault proxy's, another process of the same lab;
// - how long a fault set with `hsmlab fault` takes to reach an open event stream, beside how long
//   the `hsmlab fault` command itself took;
// - how long the first event (the lab's status) takes to arrive after a page connects, beside a
//   static file of the page fetched on the same connection settings.
import { request } from 'node:http'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { msSince } from './stats.js'

function rssMb (pid) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find(l => l.startsWith('VmRSS:')) ?? ''
  return Number(/(\d+)/.exec(line)?.[1] ?? 0) / 1024
}

/** Opens the event stream; `until(text)` resolves once the stream's text so far passes `test`. */
function events (url, token) {
  let text = ''
  const waiters = []
  const req = request(`${url}/api/events`, { headers: { authorization: `Bearer ${token}` } }, res => {
    res.setEncoding('utf8')
    res.on('data', chunk => {
      text += chunk
      for (const w of [...waiters]) if (w.test(text)) { waiters.splice(waiters.indexOf(w), 1); w.resolve() }
    })
  })
  req.on('error', () => {})
  req.end()
  return {
    until: test => test(text) ? Promise.resolve() : new Promise(resolve => { waiters.push({ test, resolve }) }),
    close: () => { req.destroy() }
  }
}

async function fetchMs (url, token) {
  const started = process.hrtime.bigint()
  await new Promise((resolve, reject) => {
    request(url, { headers: { authorization: `Bearer ${token}` } }, res => { res.resume(); res.on('end', resolve) }).on('error', reject).end()
  })
  return msSince(started)
}

/**
 * @param {{ row: Function, hsmlab: (args: string[]) => string, work: string, labs: string[] }} bench
 */
export async function consoleRows ({ row, hsmlab, work, labs }) {
  const dir = join(work, 'console-default')
  hsmlab(['up', '--dir', dir])
  labs.push(dir)
  const status = JSON.parse(hsmlab(['status', '--json', '--dir', dir]))
  const { endpoint, url, pid } = status.console
  const token = new URL(url).searchParams.get('token')

  const staticMs = await fetchMs(`${endpoint}/static/app.js`, token)
  const connected = process.hrtime.bigint()
  const stream = events(endpoint, token)
  await stream.until(text => text.includes('event: status'))
  row('console: first event (the lab\'s status) after a page connects', msSince(connected), staticMs, 'ms', '< 1000 ms (baseline: a static file of the page)')

  const cliStarted = process.hrtime.bigint()
  const setAt = process.hrtime.bigint()
  hsmlab(['fault', 'partition', 'us-west-2', '--dir', dir])
  const cliMs = msSince(cliStarted)
  await stream.until(text => /"partitioned":true/.test(text.slice(text.lastIndexOf('event: faults'))))
  row('console: a fault set by hsmlab fault seen on the event stream', msSince(setAt), cliMs, 'ms', '< 1000 ms after the command (baseline: the command itself)')
  hsmlab(['fault', 'heal', '--dir', dir])

  // A few seconds with the page open: the console reads the lab several times a second meanwhile.
  await new Promise(resolve => setTimeout(resolve, 3000))
  row('console: resident memory, default lab, a page open', rssMb(pid), rssMb(status.faults.pid), 'MB', '< 80 MB (baseline: the fault proxy)')
  stream.close()
}
