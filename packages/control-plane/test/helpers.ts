/**
 * Helpers of the control-plane tests: an in-process control plane on port 0 in a fresh
 * directory (stopped, with its HSMs, when the test ends), an AWS SDK client pointed at it, and
 * `expectAwsError`, which checks the exact `__type` an operation answers.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CloudHSMV2Client } from '@aws-sdk/client-cloudhsm-v2'
import { expect, onTestFinished } from 'vitest'
import { createManufacturerKey, writeManufacturerKey } from '@hsmlab/hsm'
import { tmpDir } from '@hsmlab/testing'
import { startControlPlane } from '../src/index.js'
import type { ControlPlane, ControlPlaneOptions } from '../src/index.js'

/** Dummy credentials: the SDK signs with them; the control plane checks them only when given `credentials`. */
export const DUMMY_CREDENTIALS = { accessKeyId: 'AKIDHSMLABTEST', secretAccessKey: 'hsmlab-test-secret' }

/** A manufacturer key file in a fresh directory. */
export async function manufacturerKeyFile (dir: string = tmpDir('hsmlab-cp-mk-')): Promise<string> {
  const file = join(dir, 'manufacturer.key')
  await writeManufacturerKey(file, createManufacturerKey())
  return file
}

/** A control plane for `region`, stopped when the test ends. */
export async function startTestControlPlane (region = 'us-east-1', options: Partial<ControlPlaneOptions> = {}): Promise<ControlPlane> {
  const dir = options.dataDir ?? tmpDir('hsmlab-cp-')
  const cp = await startControlPlane({
    region,
    dataDir: dir,
    manufacturerKeyFile: options.manufacturerKeyFile ?? await manufacturerKeyFile(),
    ...options,
    tuning: { clusterCreateDelayMs: 50, clusterInitializeDelayMs: 50, clusterDeleteDelayMs: 50, tickIntervalMs: 50, ...options.tuning }
  })
  onTestFinished(async () => { await cp.stop() })
  return cp
}

/** An SDK client of the control plane, for `region`. */
export function sdkClient (url: string, region = 'us-east-1', credentials = DUMMY_CREDENTIALS): CloudHSMV2Client {
  const client = new CloudHSMV2Client({ region, endpoint: url, credentials, maxAttempts: 1 })
  onTestFinished(() => { client.destroy() })
  return client
}

/** Checks that `promise` rejects with the AWS error shape `type` (and a message matching `message`). */
export async function expectAwsError (promise: Promise<unknown>, type: string, message?: RegExp): Promise<void> {
  let error: unknown
  try {
    await promise
  } catch (err) {
    error = err
  }
  expect(error, `expected ${type}`).toBeDefined()
  const e = error as { name?: string, awsType?: string, message?: string, $metadata?: { httpStatusCode?: number } }
  expect(e.awsType ?? e.name).toBe(type)
  if (message !== undefined) expect(e.message).toMatch(message)
}

/** Writes a regions file mapping each region to its endpoint. */
export async function writeRegionsFile (file: string, regions: Record<string, string>): Promise<void> {
  await writeFile(file, JSON.stringify(regions))
}
