/**
 * The HTTP side of the API (reference F.1): `POST /` with `X-Amz-Target:
 * BaldrApiService.<Operation>` and a JSON body (`application/x-amz-json-1.1`), answering JSON,
 * or `{"__type": "<error shape>", "message": "..."}` with status 400 (client errors) or 500
 * (CloudHsmInternalFailureException).
 *
 * One endpoint serves every region: the region of a request is the one in the credential scope
 * of its SigV4 Authorization header (what the AWS SDKs and CLI send), else an `X-Amz-Region`
 * header (hsmlab's, for unsigned clients), else this control plane's own. A request for another
 * region is forwarded, unchanged, to that region's control plane as the regions file lists it.
 *
 * Internal paths, for other regions' control planes (signed with the installation's peer secret
 * when the control plane has one, peer-secret.ts: 403 otherwise; else like the API when
 * credentials are set): `POST /_hsmlab/copies`, `GET /_hsmlab/copies/<request id>`, `POST /_hsmlab/copies/<request
 * id>/cancel`, `GET /_hsmlab/backups/<id>?copy=<request id>`, the synchronisation paths `POST
 * /_hsmlab/sync/{inventory,associate,disassociate,apply}` (sync-protocol.ts); and `GET
 * /_hsmlab/health` for anyone.
 */
import { randomUUID } from 'node:crypto'
import { createServer, request as httpRequest } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { ApiContext } from './api/context.js'
import { UNSUPPORTED_OPERATIONS, operationOf } from './api/operations.js'
import { requestTimeouts } from './defaults.js'
import { ApiError, CP_ERR_NO_SPACE, internalFailure, invalidRequest } from './errors.js'
import type { Logger } from './logger.js'
import type { CopyEndpoints } from './reconcilers/copies.js'
import type { SyncEndpoints } from './reconcilers/sync-replicas.js'
import type { Credentials } from './sigv4.js'
import { parseAuthorization, verifyRequest } from './sigv4.js'

const TARGET_PREFIX = 'BaldrApiService.'
const JSON_TYPE = 'application/x-amz-json-1.1'
const FORWARDED_HEADER = 'x-hsmlab-forwarded-by'

/** What the server needs. */
export interface ServerDeps {
  ctx: ApiContext
  /** The internal paths of copies between regions. */
  copies: CopyEndpoints
  /** The internal paths of synchronisation tasks, the replica's side. */
  sync: SyncEndpoints
  credentials?: Credentials
  /** The installation's peer secret (peer-secret.ts): when set, the internal paths take only requests signed with it. */
  peerCredentials?: Credentials
  skewMs: number
  bodyBytesMax: number
  /** How long a connection may take to send a request's headers, and the whole request (defaults.ts). */
  requestHeadersTimeoutMs: number
  requestReceiveTimeoutMs: number
  log: Logger
}

class BodyTooLarge extends Error {}

async function readBody (req: IncomingMessage, max: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > max) throw new BodyTooLarge(`the request body is larger than ${max} bytes`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

function send (res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text), 'x-amzn-requestid': randomUUID(), ...extra })
  res.end(text)
}

function sendError (res: ServerResponse, err: ApiError): void {
  send(res, err.statusCode, { __type: err.type, message: err.message }, { 'x-amzn-errortype': err.type })
}

/** A %-encoded segment of a path; a malformed one is the client's error (400), not the server's. */
function pathSegment (segment: string | undefined): string {
  try {
    return decodeURIComponent(segment ?? '')
  } catch {
    throw invalidRequest(`'${segment ?? ''}' is not a %-encoded path segment`)
  }
}

function header (req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name]
  return Array.isArray(value) ? value.join(',') : value
}

/** The region a request is for (see the module comment). */
export function requestRegion (req: IncomingMessage, own: string): string {
  const auth = parseAuthorization(header(req, 'authorization'))
  if (auth !== undefined) return auth.region
  return header(req, 'x-amz-region') ?? own
}

async function forward (req: IncomingMessage, body: Buffer, res: ServerResponse, endpoint: string, from: string, timeoutMs: number): Promise<void> {
  const target = new URL(req.url ?? '/', endpoint)
  // Keyed by header names a client chose: no prototype (a header named __proto__ is a header).
  const headers = Object.create(null) as Record<string, string | string[]>
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === 'connection' || name === 'keep-alive' || name === 'transfer-encoding') continue
    headers[name] = value
  }
  headers[FORWARDED_HEADER] = from
  headers['content-length'] = String(body.length)
  await new Promise<void>((resolve, reject) => {
    const out = httpRequest(target, { method: req.method, headers, timeout: timeoutMs }, upstream => {
      const passHeaders = Object.create(null) as Record<string, string | string[]>
      for (const [name, value] of Object.entries(upstream.headers)) {
        if (value !== undefined && name !== 'connection' && name !== 'keep-alive' && name !== 'transfer-encoding') passHeaders[name] = value
      }
      res.writeHead(upstream.statusCode ?? 502, passHeaders)
      upstream.pipe(res)
      upstream.on('end', resolve)
      upstream.on('error', reject)
    })
    out.on('timeout', () => { out.destroy(new Error(`no answer within ${timeoutMs} ms`)) })
    out.on('error', reject)
    out.end(body)
  })
}

/** Builds the HTTP server (it does not listen yet). */
export function createApiServer (deps: ServerDeps): Server {
  const { ctx, log } = deps
  const own = ctx.settings.region

  const internal = async (req: IncomingMessage, body: Buffer, res: ServerResponse, path: string): Promise<void> => {
    if (path === '/_hsmlab/health' && req.method === 'GET') {
      send(res, 200, { region: own, pid: process.pid })
      return
    }
    if (deps.peerCredentials !== undefined) {
      // Only the installation's control planes hold the peer secret: anyone else is refused
      // (403) before anything is read or changed, whatever the signature's fault was.
      try {
        verifyRequest({ method: req.method ?? 'GET', url: req.url ?? '/', rawHeaders: req.rawHeaders, body }, deps.peerCredentials, { skewMs: deps.skewMs })
      } catch (err) {
        if (!(err instanceof ApiError)) throw err
        throw new ApiError(err.type, `${err.message} (the internal paths take only requests of this installation's control planes, signed with its peer secret)`, 403)
      }
    } else if (deps.credentials !== undefined) {
      verifyRequest({ method: req.method ?? 'GET', url: req.url ?? '/', rawHeaders: req.rawHeaders, body }, deps.credentials, { skewMs: deps.skewMs })
    }
    if (path === '/_hsmlab/copies' && req.method === 'POST') {
      let json: unknown
      try { json = JSON.parse(body.toString('utf8')) } catch { throw new ApiError('SerializationException', 'the body is not JSON') }
      send(res, 200, await deps.copies.receive(json))
      return
    }
    const syncMatch = /^\/_hsmlab\/sync\/(inventory|associate|disassociate|apply)$/.exec(path)
    if (syncMatch !== null && req.method === 'POST') {
      let json: unknown
      try { json = JSON.parse(body.toString('utf8')) } catch { throw new ApiError('SerializationException', 'the body is not JSON') }
      const endpoint = syncMatch[1] as 'inventory' | 'associate' | 'disassociate' | 'apply'
      const answer = await deps.sync[endpoint](json)
      send(res, answer.status, answer.body)
      return
    }
    const copyMatch = /^\/_hsmlab\/copies\/([^/]+)$/.exec(path)
    if (copyMatch !== null && req.method === 'GET') {
      const answer = deps.copies.recorded(pathSegment(copyMatch[1]))
      send(res, answer.status, answer.body)
      return
    }
    const cancelMatch = /^\/_hsmlab\/copies\/([^/]+)\/cancel$/.exec(path)
    if (cancelMatch !== null && req.method === 'POST') {
      send(res, 200, await deps.copies.cancel(pathSegment(cancelMatch[1])))
      return
    }
    const backupMatch = /^\/_hsmlab\/backups\/(backup-[2-7a-zA-Z]{11,16})$/.exec(path)
    if (backupMatch !== null && req.method === 'GET') {
      const answer = deps.copies.bytes(backupMatch[1] ?? '', new URL(req.url ?? '/', 'http://control-plane').searchParams.get('copy') ?? undefined)
      if (answer.status === 200 && answer.body instanceof Uint8Array) {
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': answer.body.length,
          ...(answer.sha256 === undefined ? {} : { 'x-hsmlab-sha256': answer.sha256 })
        })
        res.end(answer.body)
      } else {
        send(res, answer.status, answer.body)
      }
      return
    }
    send(res, 404, { __type: 'UnknownOperationException', message: `no such path: ${req.method ?? ''} ${path}` })
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req, deps.bodyBytesMax)
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    if (path.startsWith('/_hsmlab/')) {
      await internal(req, body, res, path)
      return
    }
    if (path !== '/' || req.method !== 'POST') {
      throw new ApiError('UnknownOperationException', `the cloudhsmv2 API is served at POST / (not ${req.method ?? ''} ${path})`, 404)
    }
    const region = requestRegion(req, own)
    if (region !== own) {
      if (header(req, FORWARDED_HEADER) !== undefined) {
        throw invalidRequest(`Region ${region} is not served by this control plane (${own}); check the regions file of ${header(req, FORWARDED_HEADER) ?? ''}`)
      }
      const regions = await ctx.regions()
      const endpoint = regions[region]
      if (endpoint === undefined) {
        throw invalidRequest(`Region ${region} is not available in this hsmlab installation (its regions: ${[own, ...Object.keys(regions).filter(r => r !== own)].join(', ')})`)
      }
      try {
        await forward(req, body, res, endpoint, own, ctx.settings.regionRequestTimeoutMs)
      } catch (err) {
        if (!res.headersSent) throw internalFailure(`The control plane of ${region} (${endpoint}) cannot be reached: ${(err as Error).message}`)
        res.destroy()
      }
      return
    }
    if (deps.credentials !== undefined) {
      verifyRequest({ method: req.method, url: req.url ?? '/', rawHeaders: req.rawHeaders, body }, deps.credentials, { skewMs: deps.skewMs })
    }
    const target = header(req, 'x-amz-target')
    const name = target?.startsWith(TARGET_PREFIX) === true ? target.slice(TARGET_PREFIX.length) : undefined
    // Only the table's own entries: never a member every object inherits (constructor, __proto__).
    const operation = name === undefined ? undefined : operationOf(name)
    if (operation === undefined || name === undefined) {
      const hint = name !== undefined && UNSUPPORTED_OPERATIONS.includes(name) ? ` (hsmlab does not simulate ${name}: it has one account, so no backup is shared)` : ''
      throw new ApiError('UnknownOperationException', `Unknown operation ${target ?? '(no X-Amz-Target header)'}${hint}`)
    }
    let input: unknown = {}
    if (body.length > 0) {
      try {
        input = JSON.parse(body.toString('utf8'))
      } catch (err) {
        throw new ApiError('SerializationException', `The request body is not JSON: ${(err as Error).message}`)
      }
    }
    if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new ApiError('SerializationException', 'The request body must be a JSON object')
    const started = performance.now()
    try {
      const output = await operation.run(ctx, input)
      log.debug({ op: name, ms: Math.round(performance.now() - started) }, 'request')
      send(res, 200, output)
    } catch (err) {
      log.debug({ op: name, err: (err as Error).message }, 'request failed')
      throw err
    }
  }

  // Bounded, so that slow or half-sent requests do not hold connections open (issue 9).
  return createServer(requestTimeouts(deps), (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) { res.destroy(); return }
      if (err instanceof ApiError) { sendError(res, err); return }
      if (err instanceof BodyTooLarge) { sendError(res, new ApiError('SerializationException', err.message, 413)); return }
      // A full disk is expected to pass and changed nothing: say so plainly (500, which the SDKs retry).
      if ((err as { code?: unknown }).code === CP_ERR_NO_SPACE) {
        log.warn({ err: (err as Error).message }, 'a change did not fit on the disk')
        sendError(res, internalFailure(`The control plane could not store the change: ${(err as Error).message}`))
        return
      }
      log.error({ err }, 'request failed unexpectedly')
      sendError(res, internalFailure(`An internal error occurred: ${(err as Error).message}`))
    })
  })
}
