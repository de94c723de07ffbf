/**
 * Regions: the regions file (a JSON map of region → control-plane endpoint, re-read on each use
 * so that a lab can add a region or reroute one through a fault proxy while it runs), the HTTP
 * requests to other regions' control planes, and the partitions that decide which copies are
 * allowed (reference F.7: no copy between restricted regions — GovCloud, ISO — and standard
 * ones; GovCloud East ↔ West is allowed).
 */
import { readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import { ControlPlaneError, CP_ERR_REGIONS_FILE } from './errors.js'

/** Region → endpoint (`http://127.0.0.1:PORT`). */
export type RegionsMap = Record<string, string>

/** Reads a regions file; a missing file is an empty map. Throws CP_ERR_REGIONS_FILE when it is malformed. */
export async function readRegionsFile (file: string | undefined): Promise<RegionsMap> {
  if (file === undefined) return {}
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
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
  const out: RegionsMap = {}
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
}

/**
 * Sends one request to another region's control plane and reads its whole answer, or rejects
 * when no whole answer came within `timeoutMs`. It uses node:http, whose global agent keeps
 * connections alive, rather than fetch, whose web streams take a few milliseconds more to read
 * a backup of a megabyte.
 */
export async function sendRegionRequest (url: URL, init: { method: string, headers: Record<string, string>, body?: string, timeoutMs: number }): Promise<RegionResponse> {
  return await new Promise<RegionResponse>((resolve, reject) => {
    const headers = init.body === undefined ? init.headers : { ...init.headers, 'content-length': String(Buffer.byteLength(init.body)) }
    const request = httpRequest(url, { method: init.method, headers }, response => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => { chunks.push(chunk) })
      response.on('end', () => {
        clearTimeout(timer)
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) })
      })
      response.on('error', fail)
      response.on('close', () => { if (!response.complete) fail(new Error('the connection closed before the whole answer arrived')) })
    })
    const timer = setTimeout(() => { request.destroy(new Error(`no answer within ${init.timeoutMs} ms`)) }, init.timeoutMs)
    function fail (err: Error): void {
      clearTimeout(timer)
      reject(err)
    }
    request.on('error', fail)
    request.end(init.body)
  })
}

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
