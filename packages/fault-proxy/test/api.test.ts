/**
 * The HTTP API against Toxiproxy's (api.go): routes, status codes, bodies, headers and defaults,
 * driven by a real Toxiproxy client (toxiproxy-node-client 4.1.0, which only reports statuses
 * of errors) and by plain fetch where the exact bytes matter.
 */
import { describe, expect, it } from 'vitest'
import { Toxiproxy } from 'toxiproxy-node-client'
import type { ICreateToxicBody, Latency } from 'toxiproxy-node-client'
import { listenPort, startServer, startUpstream } from './helpers.js'

interface Raw {
  status: number
  contentType: string | null
  text: string
  json: unknown
  headers: Headers
}

async function raw (url: string, method = 'GET', body?: string, headers: Record<string, string> = {}): Promise<Raw> {
  const res = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }) })
  const text = await res.text()
  let json: unknown
  try { json = JSON.parse(text) } catch { json = undefined }
  return { status: res.status, contentType: res.headers.get('content-type'), text, json, headers: res.headers }
}

/** Toxiproxy's error answer: Go's http.Error with a JSON message and a newline. */
function expectApiError (res: Raw, status: number, message: string): void {
  expect(res.status).toBe(status)
  expect(res.contentType).toBe('text/plain; charset=utf-8')
  expect(res.text).toBe(`${JSON.stringify({ error: message, status })}\n`)
}

describe('Toxiproxy API with toxiproxy-node-client', () => {
  it('creates a proxy (201), reports the chosen port, lists and gets it', async () => {
    const { server } = await startServer()
    const upstream = await startUpstream()
    const toxiproxy = new Toxiproxy(server.url)
    const proxy = await toxiproxy.createProxy({ name: 'redis', listen: '127.0.0.1:0', upstream: upstream.address })
    expect(proxy.name).toBe('redis')
    expect(proxy.enabled).toBe(true)
    expect(proxy.upstream).toBe(upstream.address)
    expect(proxy.listen).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(listenPort(proxy.listen)).toBeGreaterThan(0)

    const all = await toxiproxy.getAll()
    expect(Object.keys(all)).toEqual(['redis'])
    const again = await toxiproxy.get('redis')
    expect(again.listen).toBe(proxy.listen)

    const created = await raw(`${server.url}/proxies`, 'POST', JSON.stringify({ name: 'pg', listen: '127.0.0.1:0', upstream: upstream.address, enabled: false }))
    expect(created.status).toBe(201)
    expect(created.contentType).toBe('application/json')
    expect(created.json).toEqual({ name: 'pg', listen: '127.0.0.1:0', upstream: upstream.address, enabled: false, toxics: [] })
    expect(Object.keys(created.json as object)).toEqual(['name', 'listen', 'upstream', 'enabled', 'toxics'])
    expect(created.headers.get('x-toxiproxy-request-id')).toMatch(/^[0-9a-v]{20}$/)

    const index = await raw(`${server.url}/proxies`)
    expect(index.status).toBe(200)
    expect(Object.keys(index.json as object)).toEqual(['pg', 'redis'])
  })

  it('adds a toxic (200) with Toxiproxy defaults, updates it with POST and PATCH, deletes it (204)', async () => {
    const { server } = await startServer()
    const upstream = await startUpstream()
    const toxiproxy = new Toxiproxy(server.url)
    const proxy = await toxiproxy.createProxy({ name: 'svc', listen: '127.0.0.1:0', upstream: upstream.address })
    const toxic = await proxy.addToxic({ type: 'latency', attributes: { latency: 100 } } as unknown as ICreateToxicBody<Latency>)
    expect(toxic.toJson()).toEqual({
      attributes: { latency: 100, jitter: 0 }, name: 'latency_downstream', stream: 'downstream', toxicity: 1, type: 'latency'
    })
    const raw1 = await raw(`${server.url}/proxies/svc/toxics/latency_downstream`)
    expect(raw1.status).toBe(200)
    expect(raw1.text).toBe('{"attributes":{"latency":100,"jitter":0},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1}')

    // toxiproxy-node-client updates with POST (deprecated since 2.6.0, still served).
    const updated = await toxic.update({ attributes: { latency: 250, jitter: 5 }, toxicity: 0.5 } as unknown as ICreateToxicBody<Latency>)
    expect(updated.attributes).toEqual({ latency: 250, jitter: 5 })
    expect(updated.toxicity).toBe(0.5)

    // PATCH merges attributes: jitter given alone keeps latency.
    const patched = await raw(`${server.url}/proxies/svc/toxics/latency_downstream`, 'PATCH', JSON.stringify({ attributes: { jitter: 7 } }))
    expect(patched.status).toBe(200)
    expect(patched.json).toEqual({ attributes: { latency: 250, jitter: 7 }, name: 'latency_downstream', type: 'latency', stream: 'downstream', toxicity: 0.5 })

    const listed = await raw(`${server.url}/proxies/svc/toxics`)
    expect(listed.json).toEqual([patched.json])

    await toxic.remove()
    const gone = await raw(`${server.url}/proxies/svc/toxics/latency_downstream`)
    expectApiError(gone, 404, 'toxic not found')
    const deleted = await raw(`${server.url}/proxies/svc`, 'DELETE')
    expect(deleted.status).toBe(204)
    expect(deleted.text).toBe('')
  })

  it('lists toxics upstream chain first, prints toxicity as Go prints a float32, keeps the stream spelling', async () => {
    const { server, client } = await startServer()
    const upstream = await startUpstream()
    await client.createProxy({ name: 'p', listen: '127.0.0.1:0', upstream: upstream.address })
    const down = await raw(`${server.url}/proxies/p/toxics`, 'POST', JSON.stringify({ type: 'bandwidth', toxicity: 0.1, attributes: { rate: 10 } }))
    expect(down.status).toBe(200)
    expect(down.text).toContain('"toxicity":0.1}')
    const up = await raw(`${server.url}/proxies/p/toxics`, 'POST', JSON.stringify({ type: 'slicer', stream: 'UpStream', attributes: { average_size: 10, size_variation: 2, delay: 100 } }))
    expect(up.json).toEqual({ attributes: { average_size: 10, size_variation: 2, delay: 100 }, name: 'slicer_UpStream', type: 'slicer', stream: 'UpStream', toxicity: 1 })
    const noop = await raw(`${server.url}/proxies/p/toxics`, 'POST', JSON.stringify({ name: 'n', type: 'noop', stream: 'upstream' }))
    expect(noop.json).toEqual({ attributes: {}, name: 'n', type: 'noop', stream: 'upstream', toxicity: 1 })
    const listed = await raw(`${server.url}/proxies/p/toxics`)
    expect((listed.json as Array<{ name: string }>).map(t => t.name)).toEqual(['slicer_UpStream', 'n', 'bandwidth_downstream'])
    const proxy = await raw(`${server.url}/proxies/p`)
    expect((proxy.json as { toxics: unknown[] }).toxics).toHaveLength(3)
  })

  it('populates (201) creating, keeping and replacing proxies', async () => {
    const { server } = await startServer()
    const upstream = await startUpstream()
    const other = await startUpstream()
    const toxiproxy = new Toxiproxy(server.url)
    const first = await toxiproxy.populate([
      { name: 'a', listen: '127.0.0.1:0', upstream: upstream.address },
      { name: 'b', listen: '127.0.0.1:0', upstream: upstream.address, enabled: false }
    ])
    expect(Object.keys(first).sort()).toEqual(['a', 'b'])
    expect(first.b?.enabled).toBe(false)

    const a = await toxiproxy.get('a')
    await a.addToxic({ type: 'latency', attributes: { latency: 1 } } as unknown as ICreateToxicBody<Latency>)
    // Same listen and upstream: kept as it is (toxics too). Another upstream: replaced.
    const res = await raw(`${server.url}/populate`, 'POST', JSON.stringify([
      { name: 'a', listen: a.listen, upstream: upstream.address },
      { name: 'b', listen: '127.0.0.1:0', upstream: other.address }
    ]))
    expect(res.status).toBe(201)
    expect(res.contentType).toBe('application/json')
    const proxies = (res.json as { proxies: Array<{ name: string, upstream: string, toxics: unknown[], enabled: boolean }> }).proxies
    expect(proxies.map(p => [p.name, p.upstream, p.toxics.length, p.enabled])).toEqual([
      ['a', upstream.address, 1, true],
      ['b', other.address, 0, true]
    ])
    // Go marshals an empty result as null.
    const empty = await raw(`${server.url}/populate`, 'POST', '[]')
    expect(empty.status).toBe(201)
    expect(empty.text).toBe('{"proxies":null}')
  })

  it('resets (204): proxies enabled again, toxics removed', async () => {
    const { server } = await startServer()
    const upstream = await startUpstream()
    const toxiproxy = new Toxiproxy(server.url)
    const proxy = await toxiproxy.createProxy({ name: 'r', listen: '127.0.0.1:0', upstream: upstream.address })
    await proxy.addToxic({ type: 'timeout', stream: 'upstream', attributes: { timeout: 0 } } as unknown as ICreateToxicBody<Latency>)
    const disabled = await proxy.update({ enabled: false, listen: proxy.listen, upstream: proxy.upstream })
    expect(disabled.enabled).toBe(false)
    const reset = await raw(`${server.url}/reset`, 'POST')
    expect(reset.status).toBe(204)
    expect(reset.text).toBe('')
    await toxiproxy.reset()
    const after = await raw(`${server.url}/proxies/r`)
    expect(after.json).toEqual({ name: 'r', listen: proxy.listen, upstream: upstream.address, enabled: true, toxics: [] })
  })

  it('reports its version as Toxiproxy does', async () => {
    const { server } = await startServer()
    const toxiproxy = new Toxiproxy(server.url)
    expect(await toxiproxy.getVersion()).toBe('{"version": "2.12.0"}\n')
    const res = await raw(`${server.url}/version`)
    expect(res.contentType).toBe('application/json;charset=utf-8')
  })

  it('updates a proxy with PATCH and with the deprecated POST', async () => {
    const { server } = await startServer()
    const upstream = await startUpstream()
    const other = await startUpstream()
    const created = await raw(`${server.url}/proxies`, 'POST', JSON.stringify({ name: 'u', listen: '127.0.0.1:0', upstream: upstream.address }))
    const listen = (created.json as { listen: string }).listen
    const patched = await raw(`${server.url}/proxies/u`, 'PATCH', JSON.stringify({ enabled: false }))
    expect(patched.status).toBe(200)
    expect(patched.json).toEqual({ name: 'u', listen, upstream: upstream.address, enabled: false, toxics: [] })
    const posted = await raw(`${server.url}/proxies/u`, 'POST', JSON.stringify({ enabled: true, upstream: other.address }))
    expect(posted.status).toBe(200)
    expect(posted.json).toEqual({ name: 'u', listen, upstream: other.address, enabled: true, toxics: [] })
  })
})

describe('Toxiproxy API errors', () => {
  it('answers 404, 409 and 400 with the statuses toxiproxy-node-client sees', async () => {
    const { server } = await startServer()
    const upstream = await startUpstream()
    const toxiproxy = new Toxiproxy(server.url)
    await expect(toxiproxy.get('missing')).rejects.toThrow('Request failed with status code 404')
    await toxiproxy.createProxy({ name: 'dup', listen: '127.0.0.1:0', upstream: upstream.address })
    await expect(toxiproxy.createProxy({ name: 'dup', listen: '127.0.0.1:0', upstream: upstream.address })).rejects.toThrow('status code 409')
    await expect(toxiproxy.createProxy({ name: 'x', listen: '127.0.0.1:0' } as never)).rejects.toThrow('status code 400')
    const dup = await toxiproxy.get('dup')
    await expect(dup.addToxic({ type: 'down', attributes: {} } as unknown as ICreateToxicBody<Latency>)).rejects.toThrow('status code 400')
  })

  it('words every error as Toxiproxy does', async () => {
    const { server } = await startServer()
    const upstream = await startUpstream()
    const url = server.url
    expectApiError(await raw(`${url}/proxies/missing`), 404, 'proxy not found')
    expectApiError(await raw(`${url}/proxies/missing`, 'PATCH', '{}'), 404, 'proxy not found')
    expectApiError(await raw(`${url}/proxies/missing`, 'DELETE'), 404, 'proxy not found')
    expectApiError(await raw(`${url}/proxies/missing/toxics`), 404, 'proxy not found')
    expectApiError(await raw(`${url}/proxies/missing/toxics`, 'POST', '{"type":"latency"}'), 404, 'proxy not found')
    expectApiError(await raw(`${url}/proxies/missing/toxics/t`, 'DELETE'), 404, 'proxy not found')

    expectApiError(await raw(`${url}/proxies`, 'POST', JSON.stringify({ listen: '127.0.0.1:0', upstream: upstream.address })), 400, 'missing required field: name')
    expectApiError(await raw(`${url}/proxies`, 'POST', JSON.stringify({ name: 'n', listen: '127.0.0.1:0' })), 400, 'missing required field: upstream')
    expectApiError(await raw(`${url}/proxies`, 'POST', ''), 400, 'bad request body: EOF')
    expectApiError(await raw(`${url}/proxies`, 'POST', JSON.stringify({ name: 5 })), 400, 'bad request body: json: cannot unmarshal number 5 into Go struct field Proxy.name of type string')
    const badJson = await raw(`${url}/proxies`, 'POST', '{nope')
    expect(badJson.status).toBe(400)
    expect((badJson.json as { error: string }).error).toMatch(/^bad request body: /)

    await raw(`${url}/proxies`, 'POST', JSON.stringify({ name: 'p', listen: '127.0.0.1:0', upstream: upstream.address }))
    expectApiError(await raw(`${url}/proxies`, 'POST', JSON.stringify({ name: 'p', listen: '127.0.0.1:0', upstream: upstream.address })), 409, 'proxy already exists')
    expectApiError(await raw(`${url}/proxies/p`, 'PATCH', ''), 400, 'bad request body: EOF')

    expectApiError(await raw(`${url}/proxies/p/toxics`, 'POST', JSON.stringify({ type: 'down' })), 400, 'invalid toxic type')
    expectApiError(await raw(`${url}/proxies/p/toxics`, 'POST', JSON.stringify({})), 400, 'invalid toxic type')
    expectApiError(await raw(`${url}/proxies/p/toxics`, 'POST', JSON.stringify({ type: 'latency', stream: 'sideways' })), 400, 'stream was invalid, can be either upstream or downstream')
    expectApiError(await raw(`${url}/proxies/p/toxics`, 'POST', JSON.stringify({ type: 'latency', attributes: { latency: 'slow' } })), 400,
      'bad request body: json: cannot unmarshal string into Go struct field LatencyToxic.attributes.latency of type int64')
    expect((await raw(`${url}/proxies/p/toxics`, 'POST', JSON.stringify({ type: 'latency' }))).status).toBe(200)
    expectApiError(await raw(`${url}/proxies/p/toxics`, 'POST', JSON.stringify({ type: 'latency' })), 409, 'toxic already exists')
    expectApiError(await raw(`${url}/proxies/p/toxics/nope`), 404, 'toxic not found')
    expectApiError(await raw(`${url}/proxies/p/toxics/nope`, 'PATCH', '{}'), 404, 'toxic not found')
    expectApiError(await raw(`${url}/proxies/p/toxics/nope`, 'DELETE'), 404, 'toxic not found')
    expectApiError(await raw(`${url}/proxies/p/toxics/latency_downstream`, 'PATCH', ''), 400, 'bad request body: EOF')

    // Populate merges the error into its answer, with the error's status.
    const missing = await raw(`${url}/populate`, 'POST', JSON.stringify([{ name: 'a', listen: '127.0.0.1:0', upstream: upstream.address }, { upstream: upstream.address }]))
    expect(missing.status).toBe(400)
    expect(missing.contentType).toBe('application/json')
    expect(missing.text).toBe('{"error":"missing required field: name at proxy 2","status":400,"proxies":null}')
    const dup = await raw(`${url}/populate`, 'POST', JSON.stringify([{ name: 'a', listen: '127.0.0.1:0', upstream: 'x:1' }, { name: 'a', listen: '127.0.0.1:0', upstream: 'x:1' }]))
    expect(dup.status).toBe(400)
    expect(dup.text).toBe('{"error":"bad request body: duplicate proxy name \\"a\\"","status":400,"proxies":null}')
    const notArray = await raw(`${url}/populate`, 'POST', '{}')
    expect(notArray.status).toBe(400)

    // A listen address in use: Go's net.Listen error, status 500.
    const taken = await raw(`${url}/proxies`, 'POST', JSON.stringify({ name: 'q', listen: `127.0.0.1:${upstream.port}`, upstream: upstream.address }))
    expectApiError(taken, 500, `listen tcp 127.0.0.1:${upstream.port}: bind: address already in use`)
    // A listen that is not host:port is the body's fault: 400, before anything is created.
    expectApiError(await raw(`${url}/proxies`, 'POST', JSON.stringify({ name: 'q', listen: 'localhost', upstream: upstream.address })), 400,
      'bad request body: listen tcp: address localhost: missing port in address')
    expectApiError(await raw(`${url}/proxies/q`), 404, 'proxy not found')
  })

  it('answers unknown paths, wrong methods and browsers as Toxiproxy\'s router does', async () => {
    const { server } = await startServer()
    const notFound = await raw(`${server.url}/nowhere`)
    expect(notFound.status).toBe(404)
    expect(notFound.text).toBe('404 page not found\n')
    const wrongMethod = await raw(`${server.url}/reset`, 'GET')
    expect(wrongMethod.status).toBe(405)
    expect(wrongMethod.text).toBe('')
    expect((await raw(`${server.url}/proxies`, 'DELETE')).status).toBe(405)
    const browser = await raw(`${server.url}/proxies`, 'GET', undefined, { 'User-Agent': 'Mozilla/5.0' })
    expect(browser.status).toBe(403)
    expect(browser.text).toBe('User agent not allowed\n')
  })
})

describe('proxy names with / and >', () => {
  it('serves them percent-encoded, and as they are from clients that do not encode', async () => {
    const { server, client } = await startServer()
    const upstream = await startUpstream()
    const names = ['us-east-1/primary/hsm-0', 'wan/us-east-1->us-west-2', 'us-east-1/primary/toxics']
    for (const name of names) await client.createProxy({ name, listen: '127.0.0.1:0', upstream: upstream.address })
    for (const name of names) {
      expect((await client.getProxy(name)).name).toBe(name)
      expect((await raw(`${server.url}/proxies/${encodeURIComponent(name)}`)).status).toBe(200)
    }
    await client.addToxic('wan/us-east-1->us-west-2', { type: 'latency', attributes: { latency: 5 } })
    expect(await client.listToxics('wan/us-east-1->us-west-2')).toHaveLength(1)

    // toxiproxy-node-client 4.1.0 puts names in paths as they are (fetch encodes only the '>').
    const toxiproxy = new Toxiproxy(server.url)
    const hsm = await toxiproxy.get('us-east-1/primary/hsm-0')
    expect(hsm.name).toBe('us-east-1/primary/hsm-0')
    const toxic = await hsm.addToxic({ name: 'slow', type: 'latency', attributes: { latency: 5 } } as unknown as ICreateToxicBody<Latency>)
    expect((await hsm.getToxic('slow')).attributes).toEqual({ latency: 5, jitter: 0 })
    await toxic.update({ attributes: { latency: 6 } } as unknown as ICreateToxicBody<Latency>)
    expect((await client.listToxics('us-east-1/primary/hsm-0'))[0]?.attributes).toEqual({ latency: 6, jitter: 0 })
    const wan = await toxiproxy.get('wan/us-east-1->us-west-2')
    expect(wan.upstream).toBe(upstream.address)
    // A proxy whose name ends in /toxics is still reachable, as a whole name.
    expect((await toxiproxy.get('us-east-1/primary/toxics')).name).toBe('us-east-1/primary/toxics')
    await toxic.remove()
    await hsm.remove()
    await expect(client.getProxy('us-east-1/primary/hsm-0')).rejects.toMatchObject({ code: 'FAULT_ERR_API', statusCode: 404, apiMessage: 'proxy not found' })
  })
})
