/**
 * The HTTP API: Toxiproxy's routes, status codes, bodies and headers (api.go), plus hsmlab's
 * extensions under `/hsmlab/`. Handlers run one at a time through the collection's queue.
 *
 * Proxy names may hold `/` and any other character: a client that percent-encodes them
 * (`us-east-1%2Fprimary%2Fhsm-0`, FaultClient does) is always understood; a client that does not
 * (toxiproxy-node-client 4.1.0 puts names in paths as they are) is understood too: the path is
 * read as Toxiproxy reads it whenever that names an existing proxy, and otherwise as one name.
 */
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { randomBytes } from 'node:crypto'
import { splitHostPort } from './address.js'
import { ApiError, asArray, asObject, badRequestBody, boolField, field, goJson, parseBody, stringField } from './go-json.js'
import type { Logger } from './logger.js'
import type { Proxy } from './proxy.js'
import type { ProxyCollection, ProxyInput } from './proxy-collection.js'
import { ERR_TOXIC_NOT_FOUND, parseNewToxic, parseToxicUpdate, toxicJson } from './toxic.js'

/** Options of `createApiServer`. */
export interface ApiServerOptions {
  collection: ProxyCollection
  logger: Logger
  bodyBytesMax: number
  /** Time to send a request's headers, in milliseconds (see `faultProxyDefaults.apiHeadersTimeoutMs`). */
  headersTimeoutMs: number
  /** Time to send a whole request, in milliseconds (see `faultProxyDefaults.apiRequestTimeoutMs`). */
  requestTimeoutMs: number
  toxiproxyVersion: string
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'

interface Reply {
  status: number
  /** JSON value to send; undefined for an empty body. */
  json?: unknown
  /** Raw body and content type, for the few answers that are not plain JSON. */
  raw?: { body: string, contentType: string }
}

type Handler = (body: string, method: Method) => Promise<Reply> | Reply

const JSON_TYPE = 'application/json'
const REQUEST_ID_ALPHABET = '0123456789abcdefghijklmnopqrstuv'

let requestCounter = 0
const requestIdPrefix = randomBytes(6).toString('hex')

/** An id shaped like the xid Toxiproxy puts in `X-Toxiproxy-Request-Id` (20 base32hex characters). */
function requestId (): string {
  let n = requestCounter++
  let suffix = ''
  for (let i = 0; i < 8; i++) {
    suffix = (REQUEST_ID_ALPHABET[n % 32] ?? '0') + suffix
    n = Math.floor(n / 32)
  }
  return `${requestIdPrefix}${suffix}`
}

function missingField (what: string): ApiError {
  return new ApiError(`missing required field: ${what}`, 400)
}

/**
 * A listen address read from a body, checked before anything changes: absent is 400
 * `missing required field: listen<where>`, and one that is not `host:port` 400 `bad request body`
 * in Go's words. (Toxiproxy finds a bad address only when it listens, and answers 500; a body
 * the client got wrong is the client's error.) An address that is well formed but cannot be
 * bound (in use, unknown host) is still the server's 500 when the proxy starts.
 */
function checkListen (listen: string, where = ''): string {
  if (listen === '') throw missingField(`listen${where}`)
  const parsed = splitHostPort(listen)
  if ('error' in parsed) throw badRequestBody(`listen tcp: address ${listen}: ${parsed.error}`)
  return listen
}

function readGroups (obj: Record<string, unknown>): string[] | undefined {
  const ext = field(obj, 'hsmlab')
  if (ext === undefined || ext === null) return undefined
  if (typeof ext !== 'object' || Array.isArray(ext)) throw badRequestBody('hsmlab must be an object like {"groups": ["us-east-1"]}')
  const groups = field(ext as Record<string, unknown>, 'groups')
  if (groups === undefined || groups === null) return []
  if (!Array.isArray(groups) || !groups.every(g => typeof g === 'string' && g !== '')) {
    throw badRequestBody('hsmlab.groups must be an array of non-empty strings')
  }
  return [...new Set(groups as string[])]
}

function readGroup (body: string, required: boolean): string | undefined {
  const obj = body.trim() === '' && !required ? {} : asObject(parseBody(body), 'hsmlab.GroupRequest')
  const group = stringField(obj, 'group', 'GroupRequest')
  if (group === undefined || group === '') {
    if (required) throw missingField('group')
    return undefined
  }
  return group
}

/**
 * The proxies of a populate body (or a `--config` file): Toxiproxy's checks in its order
 * (`missing required field: name at proxy 2`, `duplicate proxy name "x"`), before anything changes.
 */
export function readPopulateInputs (value: unknown): ProxyInput[] {
  const list = asArray(value, '[]struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }')
  const inputs: ProxyInput[] = []
  const names = new Set<string>()
  list.forEach((item, i) => {
    const obj = asObject(item, 'struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }')
    const name = stringField(obj, 'name', 'Proxy') ?? ''
    const listen = stringField(obj, 'listen', 'Proxy') ?? ''
    const upstream = stringField(obj, 'upstream', 'Proxy') ?? ''
    const enabled = boolField(obj, 'enabled', '.enabled') ?? true
    const groups = readGroups(obj)
    if (name === '') throw missingField(`name at proxy ${i + 1}`)
    if (upstream === '') throw missingField(`upstream at proxy ${i + 1}`)
    checkListen(listen, ` at proxy ${i + 1}`)
    // The same name twice is the body's fault: 400 (Toxiproxy answers 500, as for any error it
    // did not give a status).
    if (names.has(name)) throw badRequestBody(`duplicate proxy name ${JSON.stringify(name)}`)
    names.add(name)
    inputs.push({ name, listen, upstream, enabled, ...(groups === undefined ? {} : { groups }) })
  })
  return inputs
}

/** Routes a request path to a handler: `undefined` for 404, a method set without a handler for 405. */
class Router {
  readonly #api: ApiHandlers
  constructor (api: ApiHandlers) {
    this.#api = api
  }

  route (segments: string[], method: Method): Handler | 'not-found' | 'method-not-allowed' {
    const one = (methods: Method[], handler: Handler): Handler | 'method-not-allowed' =>
      methods.includes(method) ? handler : 'method-not-allowed'
    const [first, ...rest] = segments
    if (first === 'proxies' && rest.length === 0) {
      return method === 'GET' ? this.#api.proxyIndex : one(['POST'], this.#api.proxyCreate)
    }
    if (first === 'proxies') return this.#routeProxy(rest, method, one)
    if (rest.length === 0) {
      if (first === 'reset') return one(['POST'], this.#api.resetState)
      if (first === 'populate') return one(['POST'], this.#api.populate)
      if (first === 'version') return one(['GET'], this.#api.version)
    }
    if (first === 'hsmlab' && rest.length === 1) {
      switch (rest[0]) {
        case 'seed': return one(['GET'], this.#api.seed)
        case 'faults': return one(['GET'], this.#api.faults)
        case 'partition': return one(['POST'], this.#api.partition)
        case 'blackhole': return one(['POST'], this.#api.blackhole)
        case 'heal': return one(['POST'], this.#api.heal)
      }
    }
    return 'not-found'
  }

  #routeProxy (rest: string[], method: Method, one: (methods: Method[], handler: Handler) => Handler | 'method-not-allowed'): Handler | 'not-found' | 'method-not-allowed' {
    const n = rest.length
    const exists = (name: string): boolean => this.#api.collection.has(name)
    const proxyRoute = (name: string): Handler | 'method-not-allowed' => {
      if (method === 'GET') return async () => this.#api.proxyShow(name)
      if (method === 'DELETE') return async () => await this.#api.proxyDelete(name)
      return one(['POST', 'PATCH'], async (body, m) => await this.#api.proxyUpdate(name, body, m))
    }
    const toxicsRoute = (name: string): Handler | 'method-not-allowed' => method === 'GET'
      ? async () => this.#api.toxicIndex(name)
      : one(['POST'], async body => this.#api.toxicCreate(name, body))
    const toxicRoute = (name: string, toxic: string): Handler | 'method-not-allowed' => {
      if (method === 'GET') return async () => this.#api.toxicShow(name, toxic)
      if (method === 'DELETE') return async () => this.#api.toxicDelete(name, toxic)
      return one(['POST', 'PATCH'], async (body, m) => this.#api.toxicUpdate(name, toxic, body, m))
    }
    const joined = (end: number): string => rest.slice(0, end).join('/')
    // Toxiproxy's reading first, when it names an existing proxy; then the whole path as a name.
    if (n >= 3 && rest[n - 2] === 'toxics' && exists(joined(n - 2))) return toxicRoute(joined(n - 2), rest[n - 1] ?? '')
    if (n >= 2 && rest[n - 1] === 'toxics' && exists(joined(n - 1))) return toxicsRoute(joined(n - 1))
    if (exists(joined(n))) return proxyRoute(joined(n))
    // No such proxy: route by shape so that the answer is Toxiproxy's 404 "proxy not found".
    if (n >= 3 && rest[n - 2] === 'toxics') return toxicRoute(joined(n - 2), rest[n - 1] ?? '')
    if (n >= 2 && rest[n - 1] === 'toxics') return toxicsRoute(joined(n - 1))
    return proxyRoute(joined(n))
  }
}

/** The handlers, one per route, returning what to answer. */
class ApiHandlers {
  readonly collection: ProxyCollection
  readonly #logger: Logger
  readonly #version: string

  constructor (options: ApiServerOptions) {
    this.collection = options.collection
    this.#logger = options.logger
    this.#version = options.toxiproxyVersion
  }

  resetState: Handler = async () => {
    await this.collection.reset()
    return { status: 204 }
  }

  proxyIndex: Handler = () => {
    // Keyed by names clients chose: a plain object would take `__proto__` for its prototype.
    const all: Record<string, unknown> = Object.create(null) as Record<string, unknown>
    for (const proxy of this.collection.list()) all[proxy.name] = proxy.toJSON()
    return { status: 200, json: all }
  }

  proxyCreate: Handler = async body => {
    const obj = asObject(parseBody(body), 'toxiproxy.Proxy')
    const name = stringField(obj, 'name', 'Proxy') ?? ''
    const listen = stringField(obj, 'listen', 'Proxy') ?? ''
    const upstream = stringField(obj, 'upstream', 'Proxy') ?? ''
    const enabled = boolField(obj, 'enabled', 'Proxy') ?? true
    const groups = readGroups(obj)
    if (name === '') throw missingField('name')
    if (upstream === '') throw missingField('upstream')
    checkListen(listen)
    const proxy = await this.collection.create({ name, listen, upstream, enabled, ...(groups === undefined ? {} : { groups }) })
    return { status: 201, json: proxy.toJSON() }
  }

  populate: Handler = async body => {
    let proxies: Proxy[] | undefined
    try {
      const inputs = readPopulateInputs(parseBody(body))
      proxies = await this.collection.populate(inputs)
    } catch (err) {
      const apiErr = err instanceof ApiError ? err : new ApiError((err as Error).message, 500)
      this.#logger.warn({ err: apiErr.message }, 'populate errors')
      return { status: apiErr.status, json: { error: apiErr.message, status: apiErr.status, proxies: null } }
    }
    // Go marshals an empty slice built by append from nil as null.
    return { status: 201, json: { proxies: proxies.length === 0 ? null : proxies.map(p => p.toJSON()) } }
  }

  proxyShow = (name: string): Reply => ({ status: 200, json: this.collection.get(name).toJSON() })

  // The deprecation warnings are Toxiproxy's words, its typo included, for whoever greps for them.
  proxyUpdate = async (name: string, body: string, method: Method): Promise<Reply> => {
    if (method === 'POST') this.#logger.warn('ProxyUpdate: HTTP method POST is depercated. Use HTTP PATCH instead.')
    const proxy = this.collection.get(name)
    const obj = asObject(parseBody(body), 'toxiproxy.Proxy')
    const listen = checkListen(stringField(obj, 'listen', 'Proxy') ?? proxy.listen)
    const upstream = stringField(obj, 'upstream', 'Proxy') ?? proxy.upstream
    const enabled = boolField(obj, 'enabled', 'Proxy') ?? proxy.enabled
    const groups = readGroups(obj)
    await this.collection.update(proxy, { listen, upstream, enabled, ...(groups === undefined ? {} : { groups }) })
    return { status: 200, json: proxy.toJSON() }
  }

  proxyDelete = async (name: string): Promise<Reply> => {
    await this.collection.remove(name)
    return { status: 204 }
  }

  toxicIndex = (name: string): Reply => ({ status: 200, json: this.collection.get(name).toxics().map(toxicJson) })

  toxicCreate = (name: string, body: string): Reply => {
    const proxy = this.collection.get(name)
    const toxic = parseNewToxic(parseBody(body), toxicName => proxy.findToxic(toxicName) !== undefined)
    proxy.addToxic(toxic)
    return { status: 200, json: toxicJson(toxic) }
  }

  toxicShow = (name: string, toxicName: string): Reply => {
    const toxic = this.collection.get(name).findToxic(toxicName)
    if (toxic === undefined) throw ERR_TOXIC_NOT_FOUND()
    return { status: 200, json: toxicJson(toxic) }
  }

  toxicUpdate = (name: string, toxicName: string, body: string, method: Method): Reply => {
    if (method === 'POST') this.#logger.warn('ToxicUpdate: HTTP method POST is depercated. Use HTTP PATCH instead.')
    const proxy = this.collection.get(name)
    const toxic = proxy.findToxic(toxicName)
    if (toxic === undefined) throw ERR_TOXIC_NOT_FOUND()
    const updated = parseToxicUpdate(toxic, parseBody(body))
    proxy.updateToxic(updated)
    return { status: 200, json: toxicJson(updated) }
  }

  toxicDelete = (name: string, toxicName: string): Reply => {
    if (!this.collection.get(name).removeToxic(toxicName)) throw ERR_TOXIC_NOT_FOUND()
    return { status: 204 }
  }

  version: Handler = () => ({
    status: 200,
    raw: { body: `{"version": "${this.#version}"}\n`, contentType: 'application/json;charset=utf-8' }
  })

  seed: Handler = () => ({ status: 200, json: { seed: this.collection.prng.seed } })

  faults: Handler = () => ({ status: 200, json: this.collection.faults() })

  partition: Handler = body => {
    const group = readGroup(body, true) as string
    return { status: 200, json: { group, proxies: this.collection.partition(group) } }
  }

  blackhole: Handler = body => {
    const group = readGroup(body, true) as string
    return { status: 200, json: { group, proxies: this.collection.blackhole(group) } }
  }

  heal: Handler = async body => {
    const group = readGroup(body, false)
    const proxies = await this.collection.heal(group)
    return { status: 200, json: { ...(group === undefined ? {} : { group }), proxies } }
  }
}

function send (res: ServerResponse, status: number, body: string, contentType: string | undefined, extra: Record<string, string> = {}): void {
  const headers: Record<string, string | number> = { ...extra }
  if (contentType !== undefined) headers['Content-Type'] = contentType
  if (status !== 204) headers['Content-Length'] = Buffer.byteLength(body)
  res.writeHead(status, headers)
  res.end(status === 204 ? undefined : body)
}

/** Go's `http.Error` with a JSON message, as Toxiproxy's `apiError` sends it. */
function sendApiError (res: ServerResponse, err: ApiError): void {
  send(res, err.status, `${goJson({ error: err.message, status: err.status })}\n`, 'text/plain; charset=utf-8', { 'X-Content-Type-Options': 'nosniff' })
}

function splitPath (url: string): string[] | undefined {
  const query = url.indexOf('?')
  const path = query < 0 ? url : url.slice(0, query)
  if (!path.startsWith('/')) return undefined
  try {
    return path.slice(1).split('/').map(segment => decodeURIComponent(segment))
  } catch {
    return undefined
  }
}

/** Builds (does not start) the API's HTTP server. */
export function createApiServer (options: ApiServerOptions): Server {
  const handlers = new ApiHandlers(options)
  const router = new Router(handlers)
  const log = options.logger

  const handle = async (req: IncomingMessage, res: ServerResponse, body: string, tooLarge: boolean): Promise<void> => {
    res.setHeader('X-Toxiproxy-Request-Id', requestId())
    if ((req.headers['user-agent'] ?? '').startsWith('Mozilla/')) {
      send(res, 403, 'User agent not allowed\n', 'text/plain; charset=utf-8', { 'X-Content-Type-Options': 'nosniff' })
      return
    }
    const segments = splitPath(req.url ?? '/')
    const method = req.method as Method
    let reply: Reply | 'not-found' | 'method-not-allowed'
    try {
      // Routing reads which proxies exist, so it runs in the queue with the handler.
      reply = await options.collection.exclusive(async () => {
        const route = segments === undefined ? 'not-found' : router.route(segments, method)
        if (typeof route === 'string') return route
        if (tooLarge) throw badRequestBody('http: request body too large')
        return await route(body, method)
      })
    } catch (err) {
      if (err instanceof ApiError) {
        sendApiError(res, err)
        return
      }
      log.warn({ err: (err as Error).message }, 'Error did not include status code')
      sendApiError(res, new ApiError((err as Error).message, 500))
      return
    }
    if (reply === 'not-found') {
      send(res, 404, '404 page not found\n', 'text/plain; charset=utf-8', { 'X-Content-Type-Options': 'nosniff' })
      return
    }
    if (reply === 'method-not-allowed') {
      send(res, 405, '', undefined)
      return
    }
    if (reply.raw !== undefined) send(res, reply.status, reply.raw.body, reply.raw.contentType)
    else if (reply.json === undefined) send(res, reply.status, '', undefined)
    else send(res, reply.status, goJson(reply.json), JSON_TYPE)
    log.debug({ method, url: req.url, status: reply.status }, 'request')
  }

  // Node checks the two timeouts every `connectionsCheckingInterval`; a few checks per bound
  // close a slow client soon after it (Node's default, 30 s, would add up to half a minute).
  return createServer({
    keepAliveTimeout: 60_000,
    headersTimeout: options.headersTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, Math.max(10, Math.floor(options.headersTimeoutMs / 4)))
  }, (req, res) => {
    const chunks: Buffer[] = []
    let size = 0
    let tooLarge = false
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > options.bodyBytesMax) tooLarge = true
      else chunks.push(chunk)
    })
    req.on('end', () => {
      handle(req, res, tooLarge ? '' : Buffer.concat(chunks).toString('utf8'), tooLarge).catch((err: unknown) => {
        log.error({ err: (err as Error).message }, 'API handler failed')
        if (!res.headersSent) sendApiError(res, new ApiError((err as Error).message, 500))
        else res.destroy()
      })
    })
  })
}
