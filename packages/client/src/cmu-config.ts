import { readFile, writeFile } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import { ClientError, CLIENT_ERR_CONFIG } from './errors.js'

/** One HSM of a CMU configuration, in the order of the file (its index is the server id). */
export interface ServerConfig {
  /** What CMU prints as the server label: `server 0(<name>)`. */
  name: string
  hostname: string
  port: number
  /** Absolute path of the trust anchor file (the real file's customerCA certificate). */
  caFile: string
  /** `"enable": "no"` servers are skipped. */
  enabled: boolean
}

/** A parsed `cloudhsm_mgmt_util.cfg`. */
export interface CmuConfig {
  path: string
  servers: ServerConfig[]
}

function fail (path: string, why: string): never {
  throw new ClientError(CLIENT_ERR_CONFIG, `${path}: ${why}`)
}

/**
 * Reads a CMU configuration in the real tool's JSON shape (`servers[]` with hostname, name, port,
 * enable, CAfile/CApath, e2e_encryption...). hsmlab reads the trust anchor from each server's
 * `CAfile` (or `e2e_encryption.owner_cert_path`); relative paths are relative to the file.
 */
export async function readCmuConfig (path: string): Promise<CmuConfig> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new ClientError(CLIENT_ERR_CONFIG, `cannot read the configuration file ${path}: ${(err as Error).message}`, { cause: err })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new ClientError(CLIENT_ERR_CONFIG, `${path} is not valid JSON: ${(err as Error).message}`, { cause: err })
  }
  const servers = (json as { servers?: unknown }).servers
  if (!Array.isArray(servers) || servers.length === 0) fail(path, 'the configuration must list at least one server under "servers"')
  const base = dirname(resolve(path))
  return {
    path,
    servers: servers.map((raw: unknown, index: number): ServerConfig => {
      if (typeof raw !== 'object' || raw === null) fail(path, `servers[${index}] is not an object`)
      const s = raw as Record<string, unknown>
      const e2e = (typeof s.e2e_encryption === 'object' && s.e2e_encryption !== null) ? s.e2e_encryption as Record<string, unknown> : {}
      const hostname = s.hostname
      if (typeof hostname !== 'string' || hostname === '') fail(path, `servers[${index}] has no "hostname"`)
      const port = typeof s.port === 'string' ? Number(s.port) : s.port
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) fail(path, `servers[${index}] has no valid "port"`)
      const ca = typeof s.CAfile === 'string' && s.CAfile !== '' ? s.CAfile : e2e.owner_cert_path
      if (typeof ca !== 'string' || ca === '') fail(path, `servers[${index}] names no trust anchor file ("CAfile")`)
      return {
        name: typeof s.name === 'string' && s.name !== '' ? s.name : hostname,
        hostname,
        port,
        caFile: isAbsolute(ca) ? ca : resolve(base, ca),
        enabled: s.enable !== 'no'
      }
    })
  }
}

/** Writes a configuration in the real tool's shape, one entry a server, in the given order. */
export async function writeCmuConfig (path: string, servers: ServerConfig[]): Promise<void> {
  const json = {
    scard: { certificate: 'cert-sc', enable: 'no', pkey: 'pkey-sc', port: 2225 },
    servers: servers.map(s => ({
      CAfile: s.caFile,
      CApath: dirname(s.caFile),
      certificate: '',
      e2e_encryption: { enable: 'yes', owner_cert_path: s.caFile },
      enable: s.enabled ? 'yes' : 'no',
      hostname: s.hostname,
      name: s.name,
      pkey: '',
      port: s.port,
      server_ssl: 'yes',
      ssl_ciphers: ''
    }))
  }
  await writeFile(path, JSON.stringify(json, null, 4) + '\n')
}
