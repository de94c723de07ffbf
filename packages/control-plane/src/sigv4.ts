/**
 * AWS Signature Version 4, both ends: `signRequest` for ControlPlaneClient and the calls between
 * regions, `verifyRequest` for the server when it was given credentials. The API is signed with
 * service name `cloudhsm` (reference F.1); the region of a request is the one in the credential
 * scope of its Authorization header, which is how one endpoint serves every region.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { ApiError } from './errors.js'

/** Access key pair. */
export interface Credentials {
  accessKeyId: string
  secretAccessKey: string
}

/** The SigV4 signing name of cloudhsmv2. */
export const SIGNING_SERVICE = 'cloudhsm'
const ALGORITHM = 'AWS4-HMAC-SHA256'

/** What an Authorization header says. */
export interface ParsedAuthorization {
  accessKeyId: string
  date: string
  region: string
  service: string
  signedHeaders: string[]
  signature: string
}

function sha256Hex (data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

function hmac (key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest()
}

function encodeRfc3986 (text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, c => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

function canonicalUri (path: string): string {
  if (path === '' || path === '/') return '/'
  return path.split('/').map(segment => encodeRfc3986(segment)).join('/')
}

function canonicalQuery (query: string): string {
  if (query === '') return ''
  return query.split('&').filter(p => p !== '').map(pair => {
    const [k = '', v = ''] = pair.split('=')
    return [encodeRfc3986(decodeURIComponent(k.replace(/\+/g, ' '))), encodeRfc3986(decodeURIComponent(v.replace(/\+/g, ' ')))]
  }).sort((a, b) => a[0] === b[0] ? (a[1] ?? '').localeCompare(b[1] ?? '') : (a[0] ?? '') < (b[0] ?? '') ? -1 : 1)
    .map(([k, v]) => `${k ?? ''}=${v ?? ''}`).join('&')
}

function signingKey (secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request')
}

function signatureOf (opts: {
  method: string, path: string, query: string, headers: Map<string, string>, signedHeaders: string[],
  payloadHash: string, amzDate: string, scope: string, key: Buffer
}): string {
  const canonicalHeaders = opts.signedHeaders.map(h => `${h}:${(opts.headers.get(h) ?? '').trim().replace(/\s+/g, ' ')}\n`).join('')
  const canonicalRequest = [opts.method, canonicalUri(opts.path), canonicalQuery(opts.query), canonicalHeaders, opts.signedHeaders.join(';'), opts.payloadHash].join('\n')
  const stringToSign = [ALGORITHM, opts.amzDate, opts.scope, sha256Hex(canonicalRequest)].join('\n')
  return createHmac('sha256', opts.key).update(stringToSign, 'utf8').digest('hex')
}

/** `20240102T030405Z` */
function amzDateOf (date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
}

/**
 * Signs a request: returns the headers to send (the given ones, plus host, x-amz-date,
 * x-amz-content-sha256 and authorization).
 */
export function signRequest (opts: {
  method: string
  url: URL
  headers: Record<string, string>
  body: string | Uint8Array
  region: string
  credentials: Credentials
  service?: string
  now?: Date
}): Record<string, string> {
  const service = opts.service ?? SIGNING_SERVICE
  const amzDate = amzDateOf(opts.now ?? new Date())
  const date = amzDate.slice(0, 8)
  const payloadHash = sha256Hex(opts.body)
  const headers: Record<string, string> = { ...opts.headers, host: opts.url.host, 'x-amz-date': amzDate, 'x-amz-content-sha256': payloadHash }
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
  const signedHeaders = [...lower.keys()].sort()
  const scope = `${date}/${opts.region}/${service}/aws4_request`
  const signature = signatureOf({
    method: opts.method.toUpperCase(),
    path: opts.url.pathname,
    query: opts.url.search.replace(/^\?/, ''),
    headers: lower,
    signedHeaders,
    payloadHash,
    amzDate,
    scope,
    key: signingKey(opts.credentials.secretAccessKey, date, opts.region, service)
  })
  headers.authorization = `${ALGORITHM} Credential=${opts.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders.join(';')}, Signature=${signature}`
  return headers
}

/** Reads an Authorization header; undefined when it is not a SigV4 header. */
export function parseAuthorization (header: string | undefined): ParsedAuthorization | undefined {
  if (header === undefined || !header.startsWith(`${ALGORITHM} `)) return undefined
  const fields = new Map<string, string>()
  for (const part of header.slice(ALGORITHM.length + 1).split(',')) {
    const eq = part.indexOf('=')
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim())
  }
  const credential = fields.get('Credential')?.split('/')
  const signedHeaders = fields.get('SignedHeaders')
  const signature = fields.get('Signature')
  if (credential === undefined || credential.length !== 5 || credential[4] !== 'aws4_request' || signedHeaders === undefined || signature === undefined) return undefined
  const [accessKeyId = '', date = '', region = '', service = ''] = credential
  return { accessKeyId, date, region, service, signedHeaders: signedHeaders.split(';'), signature }
}

/** What `verifyRequest` needs of a request. */
export interface RequestToVerify {
  method: string
  /** Path and query, as received (`/` or `/_hsmlab/backups/backup-...`). */
  url: string
  /** Node's `rawHeaders`: name, value, name, value... */
  rawHeaders: string[]
  body: Uint8Array
}

/**
 * Checks a request's SigV4 signature against `credentials`; throws the ApiError AWS answers
 * (MissingAuthenticationTokenException, IncompleteSignatureException, UnrecognizedClientException,
 * InvalidSignatureException) otherwise.
 */
export function verifyRequest (req: RequestToVerify, credentials: Credentials, opts: { skewMs: number, now?: number }): ParsedAuthorization {
  const headers = new Map<string, string>()
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = (req.rawHeaders[i] ?? '').toLowerCase()
    const value = req.rawHeaders[i + 1] ?? ''
    headers.set(name, headers.has(name) ? `${headers.get(name) ?? ''},${value}` : value)
  }
  const header = headers.get('authorization')
  if (header === undefined) throw new ApiError('MissingAuthenticationTokenException', 'Missing Authentication Token')
  const auth = parseAuthorization(header)
  if (auth === undefined) {
    throw new ApiError('IncompleteSignatureException', `Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters of ${ALGORITHM}. Authorization=${header}`)
  }
  if (auth.accessKeyId !== credentials.accessKeyId) {
    throw new ApiError('UnrecognizedClientException', 'The security token included in the request is invalid.')
  }
  const amzDate = headers.get('x-amz-date')
  if (amzDate === undefined || !/^\d{8}T\d{6}Z$/.test(amzDate)) {
    throw new ApiError('IncompleteSignatureException', 'Authorization header requires existence of either a \'X-Amz-Date\' or a \'Date\' header.')
  }
  const signedAtMs = Date.parse(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`)
  const now = opts.now ?? Date.now()
  if (!Number.isFinite(signedAtMs) || Math.abs(now - signedAtMs) > opts.skewMs) {
    throw new ApiError('InvalidSignatureException', `Signature expired: ${amzDate} is now earlier or later than the allowed window of ${Math.round(opts.skewMs / 60_000)} minutes around ${amzDateOf(new Date(now))}.`)
  }
  const computedHash = sha256Hex(req.body)
  const claimedHash = headers.get('x-amz-content-sha256')
  const payloadHash = claimedHash === 'UNSIGNED-PAYLOAD' ? claimedHash : computedHash
  const [path = '/', query = ''] = req.url.split('?')
  let decodedPath: string
  try {
    decodedPath = decodeURIComponent(path)
  } catch {
    // A malformed %-escape is the client's error (it threw a URIError, which answered 500).
    throw new ApiError('InvalidSignatureException', `The request path ${path} is not %-encoded correctly, so no signature can match it.`)
  }
  const expected = signatureOf({
    method: req.method.toUpperCase(),
    path: decodedPath,
    query,
    headers,
    signedHeaders: auth.signedHeaders,
    payloadHash,
    amzDate,
    scope: `${auth.date}/${auth.region}/${auth.service}/aws4_request`,
    key: signingKey(credentials.secretAccessKey, auth.date, auth.region, auth.service)
  })
  const given = Buffer.from(auth.signature, 'utf8')
  const wanted = Buffer.from(expected, 'utf8')
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted) || (claimedHash !== undefined && claimedHash !== 'UNSIGNED-PAYLOAD' && claimedHash !== computedHash)) {
    throw new ApiError('InvalidSignatureException', 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.')
  }
  return auth
}
