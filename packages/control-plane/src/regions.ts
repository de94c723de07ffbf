/**
 * Regions: the regions file (a JSON map of region → control-plane endpoint, re-read on each use
 * so that a lab can add a region or reroute one through a fault proxy while it runs), and the
 * partitions that decide which copies are allowed (reference F.7: no copy between restricted
 * regions — GovCloud, ISO — and standard ones; GovCloud East ↔ West is allowed).
 */
import { readFile } from 'node:fs/promises'
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
