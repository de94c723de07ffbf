/**
 * Regions: the regions file (a JSON map of region → control-plane endpoint, re-read on each use
 * so that a lab can add a region or reroute one through a fault proxy while it runs), the HTTP
 * requests to other regions' control planes, and the partitions that decide which copies are
 * allowed (reference F.7: no copy between restricted regions — GovCloud, ISO — and standard
 * ones; GovCloud East ↔ West is allowed).
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import { ControlPlaneError, CP_ERR_REGIONS_FILE } from './errors.js'
import type { Credentials } from './sigv4.js'
import { signRequest } from './sigv4.js'

/** Region → endpoint (`http://127.0.0.1:PORT`). */
export type RegionsMap = Record<string, string>

/**
 * Reads a regions file; a missing file is an empty map. Throws CP_ERR_REGIONS_FILE when it is
 * malformed. The file (a few lines) is read synchronously: a read through the thread pool takes
 * several turns of the event loop, each behind whatever else runs then (a copy's request for the
 * bytes of a backup waited for it behind the writes of the state), for a read of microseconds.
 */
export async function readRegionsFile (file: string | undefined): Promise<RegionsMap> {
  if (file === undefined) return Object.create(null) as RegionsMap
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Object.create(null) as RegionsMap
    throw new ControlPlaneError(CP_ERR_REGIONS_FILE, `cannot read the regions file ${file}: ${(err as Error).message}`, { cause: err })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new ControlPlaneError(CP_ERR_REGIONS_FILE, `the regions file ${file} is not JSON: ${(err as Error).message}`, { cause: err })
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ControlPlaneError(CP_ERR_REGIONS_FILE, `the regions file ${file} must be a JSON object mapping each region to its control-plane endpoint`)
  }
  // Looked up by region names that come from requests (X-Amz-Region, a copy's source region):
  // no prototype, so that `constructor` is no region.
  const out = Object.create(null) as RegionsMap
  for (const [region, endpoint] of Object.entries(json)) {
    if (typeof endpoint !== 'string' || !/^https?:\/\//.test(endpoint)) {
      throw new ControlPlaneError(CP_ERR_REGIONS_FILE, `the regions file ${file} maps ${region} to ${JSON.stringify(endpoint)}, which is not an http:// endpoint`)
    }
    out[region] = endpoint.replace(/\/+$/, '')
  }
  return out
}

/** The whole answer of another region's control plane. */
export interface RegionResponse {
  status: number
  /** Header names in lower case. */
  headers: IncomingHttpHeaders
  body: Buffer
  /**
   * The SHA-256 (hex) of `body`, computed chunk by chunk as it arrived, when the answer names the
   * SHA-256 of its body (`x-hsmlab-sha256`: the bytes of a backup): only the last chunk is left
   * to hash once the last byte is in. Compare it with that header to check the bytes.
   */
  bodySha256?: string
}

/** The header with which an answer names the SHA-256 (hex) of its body. */
export const BODY_SHA256_HEADER = 'x-hsmlab-sha256'

/**
 * Sends one request to another region's control plane and reads its whole answer, or rejects
 * when no whole answer came within `timeoutMs`. It uses node:http, whose global agent keeps
 * connections alive, rather than fetch, whose web streams take a few milliseconds more to read
 * a backup of a megabyte. A body of a known length is copied, chunk by chunk as it arrives, into
 * one buffer of that length (nothing is left to join at the end); a body that names its SHA-256
 * is hashed as it arrives too (`bodySha256`).
 */
export async function sendRegionRequest (url: URL, init: { method: string, headers: Record<string, string>, body?: string, timeoutMs: number }): Promise<RegionResponse> {
  try {
    return await sendOnce(url, init)
  } catch (err) {
    // A kept-alive connection the server closed as idle just as this request went out: the server
    // read nothing of it (it answered nothing), so sending it again, on a new connection, is safe
    // for any method (node's documented remedy). Any other failure is the caller's.
    if (!(err instanceof StaleConnectionError)) throw err
    return await sendOnce(url, init)
  }
}

/** The reset of a reused keep-alive connection before any byte of an answer. */
class StaleConnectionError extends Error {}

async function sendOnce (url: URL, init: { method: string, headers: Record<string, string>, body?: string, timeoutMs: number }): Promise<RegionResponse> {
  return await new Promise<RegionResponse>((resolve, reject) => {
    const headers = init.body === undefined ? init.headers : { ...init.headers, 'content-length': String(Buffer.byteLength(init.body)) }
    let answered = false
    const request = httpRequest(url, { method: init.method, headers }, response => {
      answered = true
      const hash = response.headers[BODY_SHA256_HEADER] === undefined ? undefined : createHash('sha256')
      const length = Number(response.headers['content-length'] ?? NaN)
      // Known length: each chunk goes straight to its place; else (or past it, which node:http
      // refuses anyway) the chunks are joined at the end.
      let whole = Number.isSafeInteger(length) && length >= 0 && length <= WHOLE_BODY_MAX ? Buffer.allocUnsafe(length) : undefined
      let filled = 0
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => {
        hash?.update(chunk)
        if (whole !== undefined && filled + chunk.length <= whole.length) {
          chunk.copy(whole, filled)
        } else {
          if (whole !== undefined) { chunks.push(whole.subarray(0, filled)); whole = undefined }
          chunks.push(chunk)
        }
        filled += chunk.length
      })
      response.on('end', () => {
        clearTimeout(timer)
        const body = whole !== undefined ? whole.subarray(0, filled) : Buffer.concat(chunks)
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body, ...(hash === undefined ? {} : { bodySha256: hash.digest('hex') }) })
      })
      response.on('error', fail)
      response.on('close', () => { if (!response.complete) fail(new Error('the connection closed before the whole answer arrived')) })
    })
    const timer = setTimeout(() => { request.destroy(new Error(`no answer within ${init.timeoutMs} ms`)) }, init.timeoutMs)
    function fail (err: Error): void {
      clearTimeout(timer)
      reject(err)
    }
    request.on('error', (err: NodeJS.ErrnoException) => {
      fail(request.reusedSocket && err.code === 'ECONNRESET' && !answered ? new StaleConnectionError(err.message, { cause: err }) : err)
    })
    request.end(init.body)
  })
}

/** A request to another region's control plane. */
export interface RegionRequest {
  method: 'GET' | 'POST'
  path: string
  body?: unknown
  timeoutMs?: number
}

/**
 * The client of the other regions' control planes: each request goes to the endpoint the regions
 * file names now, signed with `credentials` when they are given, and waits `timeoutMs` at most
 * (or its own `timeoutMs`).
 */
export function regionClient (opts: { regionsFile?: string | undefined, credentials?: Credentials | undefined, timeoutMs: number }): {
  regions: () => Promise<RegionsMap>
  fetch: (region: string, request: RegionRequest) => Promise<RegionResponse>
} {
  return {
    regions: async () => await readRegionsFile(opts.regionsFile),
    fetch: async (region, request) => {
      const regions = await readRegionsFile(opts.regionsFile)
      const endpoint = regions[region]
      if (endpoint === undefined) throw new Error(`region ${region} is not in the regions file${opts.regionsFile === undefined ? ' (none was given: --regions-file)' : ` ${opts.regionsFile}`}`)
      const url = new URL(request.path, `${endpoint}/`)
      const body = request.body === undefined ? undefined : JSON.stringify(request.body)
      let headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' }
      if (opts.credentials !== undefined) {
        headers = signRequest({ method: request.method, url, headers, body: body ?? '', region, credentials: opts.credentials })
      }
      return await sendRegionRequest(url, { method: request.method, headers, ...(body === undefined ? {} : { body }), timeoutMs: request.timeoutMs ?? opts.timeoutMs })
    }
  }
}

/** The largest body sendRegionRequest takes in one buffer allocated up front from its content-length. */
const WHOLE_BODY_MAX = 256 * 1024 * 1024

/** The AWS partition of a region: `aws`, `aws-us-gov`, `aws-iso`, `aws-iso-b`. */
export function partitionOf (region: string): string {
  if (region.startsWith('us-gov-')) return 'aws-us-gov'
  if (/^[a-z]{2}-isob-/.test(region)) return 'aws-iso-b'
  if (/^[a-z]{2}-iso-/.test(region)) return 'aws-iso'
  if (region.startsWith('cn-')) return 'aws-cn'
  return 'aws'
}

/** True for the restricted partitions (GovCloud, ISO). */
export function isRestricted (region: string): boolean {
  const p = partitionOf(region)
  return p === 'aws-us-gov' || p.startsWith('aws-iso')
}

/** The ARN prefix of a region's resources: `arn:aws:cloudhsm:us-east-1:111122223333`. */
export function arnPrefix (region: string, accountId: string): string {
  return `arn:${partitionOf(region)}:cloudhsm:${region}:${accountId}`
}

/** A region name the API accepts for `--region` (the model's Region pattern, and ISO regions). */
export function isRegionName (region: string): boolean {
  return /^[a-z]{2}(-(gov|iso|isob))?-(east|west|north|south|central){1,2}-\d$/.test(region)
}
