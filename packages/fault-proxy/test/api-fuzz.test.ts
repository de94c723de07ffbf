/**
 * The fault proxy's API under names and bodies a well-behaved client never sends (issue 9, §1,
 * §4 and §5), against a real server on port 0: names every object inherits (`constructor`,
 * `__proto__`, ...) as routes, proxy names, toxic names, toxic types and attribute names; the
 * malformed bodies that were answered 500; and fast-check properties over random methods, paths
 * and bodies: never a 500, unknown routes Toxiproxy's 404, malformed bodies Toxiproxy's 400.
 * Runs are bounded in number and time; fast-check prints the seed of a failure.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { startServer } from './helpers.js'

const INHERITED = ['constructor', '__proto__', 'hasOwnProperty', 'toString', 'valueOf']
const LIMIT = { numRuns: 300, interruptAfterTimeLimit: 4_000 }

interface Answer {
  status: number
  contentType: string | null
  text: string
}

async function call (base: string, method: string, path: string, body?: string): Promise<Answer> {
  const res = await fetch(`${base}${path}`, { method, ...(body === undefined ? {} : { body }) })
  return { status: res.status, contentType: res.headers.get('content-type'), text: await res.text() }
}

/** Toxiproxy's error answer: `{"error", "status"}` with the HTTP status (populate's is merged into its JSON). */
function expectApiError (answer: Answer, status: number): void {
  expect(answer.status).toBe(status)
  const body = JSON.parse(answer.text) as { error: unknown, status: unknown }
  expect(typeof body.error).toBe('string')
  expect(body.status).toBe(status)
}

const PROXY = (name: string): string => JSON.stringify({ name, listen: '127.0.0.1:0', upstream: '127.0.0.1:9' })

describe('the fault proxy API and names every object inherits', () => {
  it('answers inherited names as routes, proxies, toxics, types and attributes with their own entries only', async () => {
    const { server } = await startServer()
    const url = server.url
    for (const name of INHERITED) {
      expect((await call(url, 'GET', `/${name}`)).status).toBe(404)
      expect((await call(url, 'POST', `/hsmlab/${name}`, '{}')).status).toBe(404)
      expectApiError(await call(url, 'GET', `/proxies/${name}`), 404)
      expectApiError(await call(url, 'POST', `/proxies/${name}/toxics`, '{"type":"latency"}'), 404)
      expect((await call(url, 'POST', '/proxies', PROXY(name))).status).toBe(201)
      expectApiError(await call(url, 'POST', `/proxies/${name}/toxics`, JSON.stringify({ type: name })), 400)
      const toxic = await call(url, 'POST', `/proxies/${name}/toxics`, JSON.stringify({ name, type: 'latency', attributes: { [name]: 5, latency: 7 } }))
      expect(JSON.parse(toxic.text)).toEqual({ attributes: { latency: 7, jitter: 0 }, name, type: 'latency', stream: 'downstream', toxicity: 1 })
      expectApiError(await call(url, 'GET', `/proxies/${name}/toxics/nope`), 404)
      expect((await call(url, 'GET', `/proxies/${name}/toxics/${name}`)).status).toBe(200)
      expect((await call(url, 'POST', '/hsmlab/partition', JSON.stringify({ group: name }))).status).toBe(200)
    }
    // Every proxy is listed under its own name, `__proto__` included.
    const listed = JSON.parse((await call(url, 'GET', '/proxies')).text) as unknown
    expect(Object.keys(listed as object).sort()).toEqual([...INHERITED].sort())
    expect(Object.getPrototypeOf(listed)).toBe(Object.prototype)
    const faults = JSON.parse((await call(url, 'GET', '/hsmlab/faults')).text) as { proxies: object }
    expect(Object.keys(faults.proxies).sort()).toEqual([...INHERITED].sort())
  })
})

describe('the fault proxy API and malformed bodies', () => {
  it('answers 400, never 500, to the bodies that were answered 500, and changes nothing', async () => {
    const { server } = await startServer()
    const url = server.url
    expect((await call(url, 'POST', '/proxies', PROXY('p'))).status).toBe(201)
    const before = (await call(url, 'GET', '/proxies')).text

    // No listen, or one that is not host:port.
    expectApiError(await call(url, 'POST', '/proxies', '{"name":"a","upstream":"127.0.0.1:9"}'), 400)
    expectApiError(await call(url, 'POST', '/proxies', '{"name":"a","upstream":"127.0.0.1:9","listen":"127.0.0.1"}'), 400)
    expectApiError(await call(url, 'POST', '/proxies', '{"name":"a","upstream":"127.0.0.1:9","listen":"127.0.0.1:99999"}'), 400)
    expectApiError(await call(url, 'PATCH', '/proxies/p', '{"listen":"nowhere"}'), 400)
    expectApiError(await call(url, 'POST', '/populate', '[{"name":"a","upstream":"127.0.0.1:9"}]'), 400)
    expectApiError(await call(url, 'POST', '/populate', '[{"name":"a","upstream":"127.0.0.1:9","listen":"[::1"}]'), 400)
    // The same name twice in one populate body.
    expectApiError(await call(url, 'POST', '/populate', `[${PROXY('a')},${PROXY('a')}]`), 400)
    // A toxicity no float32 holds.
    expectApiError(await call(url, 'POST', '/proxies/p/toxics', '{"type":"latency","toxicity":1e39}'), 400)
    expectApiError(await call(url, 'POST', '/proxies/p/toxics', '{"type":"latency","toxicity":-1e400}'), 400)

    expect((await call(url, 'GET', '/proxies')).text).toBe(before)
    // A reset (which restarts every proxy) still works: no proxy was left with a bad listen.
    expect((await call(url, 'POST', '/reset')).status).toBe(204)
  })

  it('never answers 500 to random methods, paths and bodies; unknown routes get 404', async () => {
    const { server } = await startServer()
    const url = server.url
    const segment = fc.oneof(
      fc.constantFrom('proxies', 'toxics', 'populate', 'reset', 'version', 'hsmlab', 'seed', 'faults', 'partition', 'blackhole', 'heal', 'p', 'latency_downstream', ...INHERITED),
      fc.string({ maxLength: 8 }).map(s => encodeURIComponent(s))
    )
    const path = fc.oneof(
      { arbitrary: fc.constant('/proxies'), weight: 2 },
      fc.constantFrom('/proxies', '/populate', '/proxies/p', '/proxies/p/toxics', '/proxies/p/toxics/t', '/hsmlab/heal', '/reset'),
      fc.array(segment, { minLength: 1, maxLength: 5 }).map(parts => `/${parts.join('/')}`)
    )
    // POST most often: most routes that change something take it.
    const method = fc.oneof({ arbitrary: fc.constant('POST'), weight: 4 }, fc.constantFrom('GET', 'PATCH', 'DELETE', 'PUT', 'OPTIONS'))
    await fc.assert(fc.asyncProperty(method, path, body(), async (m, p, b) => {
      const answer = await call(url, m, p, m === 'GET' || m === 'OPTIONS' ? undefined : b)
      expect(answer.status).toBeLessThan(500)
      const first = p.split('/')[1] ?? ''
      if (!['proxies', 'reset', 'populate', 'version', 'hsmlab'].includes(first)) {
        expect(answer.status).toBe(404)
        expect(answer.text).toBe('404 page not found\n')
      }
    }), LIMIT)
  })

  it('never answers 500 to random bodies on the routes that read one; malformed ones get Toxiproxy\'s 400', async () => {
    const { server } = await startServer()
    const url = server.url
    const route = fc.constantFrom(['POST', '/proxies'], ['POST', '/populate'], ['POST', '/proxies/p/toxics'], ['PATCH', '/proxies/p'],
      ['PATCH', '/proxies/p/toxics/t'], ['POST', '/hsmlab/partition'], ['POST', '/hsmlab/heal'])
    const malformed = fc.oneof(
      // Not JSON at all, or JSON cut short.
      fc.string({ maxLength: 30 }),
      fc.jsonValue({ maxDepth: 3 }).map(v => JSON.stringify(v)).map(s => s.slice(0, s.length - 1))
    )
    await fc.assert(fc.asyncProperty(route, fc.oneof(body(), malformed), async ([m, p], b) => {
      // The routes under /proxies/p need p (and its toxic t); an earlier run may have replaced them.
      if ((await call(url, 'GET', '/proxies/p')).status === 404) await call(url, 'POST', '/proxies', PROXY('p'))
      if ((await call(url, 'GET', '/proxies/p/toxics/t')).status === 404) await call(url, 'POST', '/proxies/p/toxics', '{"name":"t","type":"latency"}')
      const answer = await call(url, m, p, b)
      expect(answer.status).toBeLessThan(500)
      if (answer.status >= 400) expectApiError(answer, answer.status)
      // (A blank body is an empty request where one is optional: /hsmlab/heal heals everything.)
      if (!isJson(b) && b.trim() !== '') expect(answer.status).toBe(400)
    }), LIMIT)
  })
})

function isJson (text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/** Bodies: JSON with the API's field names (and inherited ones) holding random values, random JSON, and text. */
function body (): fc.Arbitrary<string> {
  const key = fc.constantFrom('name', 'Name', 'listen', 'upstream', 'enabled', 'hsmlab', 'groups', 'group', 'type', 'stream', 'toxicity',
    'attributes', 'latency', 'jitter', 'rate', ...INHERITED)
  // Listen addresses are well formed or not, but never a host to resolve: a lookup is the
  // server's business (an unknown host is its 500, as in Toxiproxy), and slow.
  const listen = fc.oneof(fc.constantFrom('127.0.0.1:0', 'localhost:0', '127.0.0.1', '[::1', '127.0.0.1:99999', ''), fc.string({ maxLength: 8 }).map(s => s.replaceAll(':', '')))
  const leaf = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.double(), fc.string({ maxLength: 10 }),
    fc.constantFrom('latency', 'bandwidth', 'timeout', 'upstream', 'downstream', 'p', '127.0.0.1:9', ...INHERITED))
  const value: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>(tie => ({
    v: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('v'), { maxLength: 3 }), fc.dictionary(key, tie('v'), { maxKeys: 4 }))
  })).v
  const object = fc.tuple(fc.dictionary(key, value, { maxKeys: 6 }), fc.option(listen)).map(([o, l]) => l === null ? o : { ...o, listen: l })
  // Bodies close to valid ones, so that requests get past the first checks.
  const proxy = fc.record({
    name: fc.constantFrom('p', 'q', ...INHERITED),
    upstream: fc.constantFrom('127.0.0.1:9', 'x'),
    listen,
    enabled: fc.oneof(fc.boolean(), value)
  }, { requiredKeys: ['name', 'upstream'] })
  const toxic = fc.record({
    name: fc.constantFrom('t', ...INHERITED),
    type: fc.constantFrom('latency', 'bandwidth', 'slicer', 'noop', ...INHERITED),
    stream: fc.constantFrom('upstream', 'DOWNSTREAM', 'sideways'),
    toxicity: fc.oneof(fc.double(), fc.constantFrom(0.5, 1e39, -1e39)),
    attributes: fc.oneof(fc.dictionary(key, value, { maxKeys: 3 }), value)
  }, { requiredKeys: ['type'] })
  return fc.oneof(
    object.map(o => JSON.stringify(o)),
    fc.array(object, { maxLength: 3 }).map(a => JSON.stringify(a)),
    proxy.map(o => JSON.stringify(o)),
    fc.array(proxy, { maxLength: 3 }).map(a => JSON.stringify(a)),
    toxic.map(o => JSON.stringify(o)),
    value.map(v => JSON.stringify(v)),
    fc.string({ maxLength: 20 })
  )
}
