/**
 * JSON as Toxiproxy's Go server reads and writes it, so that every client sees the bytes it
 * expects: output escapes `<`, `>`, `&`, U+2028 and U+2029 as Go's `encoding/json` does, float32
 * fields print in their shortest form, and input fields match their names case-insensitively,
 * leave a field unchanged on `null`, ignore unknown fields, and fail with Go's messages
 * (`json: cannot unmarshal number into Go struct field Proxy.name of type string`).
 */

/** An API error: the message and HTTP status of a `{"error", "status"}` answer. */
export class ApiError extends Error {
  readonly status: number
  constructor (message: string, status: number) {
    super(message)
    this.name = 'ApiError'
    this.status = status
  }
}

/** `bad request body: <detail>` (400), as Toxiproxy's `joinError(err, ErrBadRequestBody)`. */
export function badRequestBody (detail: string): ApiError {
  return new ApiError(`bad request body: ${detail}`, 400)
}

const GO_ESCAPES = /[<>&\u2028\u2029]/g

/** `JSON.stringify` with Go's HTML-safe escapes. */
export function goJson (value: unknown): string {
  return JSON.stringify(value).replace(GO_ESCAPES, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** The shortest decimal that reads back as the same float32, as Go prints a `float32` field. */
export function float32Json (value: number): number {
  const f = Math.fround(value)
  if (!Number.isFinite(f) || Number.isInteger(f)) return f
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(f.toPrecision(digits))
    if (Math.fround(candidate) === f) return candidate
  }
  return f
}

/** Parses a request body: an empty body is Go's `EOF`, a syntax error keeps JSON.parse's words. */
export function parseBody (text: string): unknown {
  if (text.trim() === '') throw badRequestBody('EOF')
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    throw badRequestBody((err as Error).message)
  }
}

function kindOf (value: unknown): string {
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'number') return 'number'
  if (typeof value === 'boolean') return 'bool'
  return typeof value
}

function unmarshalError (value: unknown, where: string, goType: string): ApiError {
  const kind = typeof value === 'number' ? `number ${String(value)}` : kindOf(value)
  return badRequestBody(`json: cannot unmarshal ${kind} into ${where} of type ${goType}`)
}

/** A JSON object, or Go's error for a body of another kind. */
export function asObject (value: unknown, goType: string): Record<string, unknown> {
  if (value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) throw unmarshalError(value, 'Go value', goType)
  return value as Record<string, unknown>
}

/** A JSON array, or Go's error for a body of another kind; `null` is an empty array. */
export function asArray (value: unknown, goType: string): unknown[] {
  if (value === null) return []
  if (!Array.isArray(value)) throw unmarshalError(value, 'Go value', goType)
  return value
}

/** The value of a field, matched exactly first and then case-insensitively (Go's rule). */
export function field (obj: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(obj, name)) return obj[name]
  const lower = name.toLowerCase()
  for (const key of Object.keys(obj)) {
    if (key.toLowerCase() === lower) return obj[key]
  }
  return undefined
}

/** A string field; `undefined` when absent or null. */
export function stringField (obj: Record<string, unknown>, name: string, struct: string): string | undefined {
  const value = field(obj, name)
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw unmarshalError(value, `Go struct field ${struct}.${name}`, 'string')
  return value
}

/** A bool field; `undefined` when absent or null. */
export function boolField (obj: Record<string, unknown>, name: string, struct: string): boolean | undefined {
  const value = field(obj, name)
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'boolean') throw unmarshalError(value, `Go struct field ${struct}.${name}`, 'bool')
  return value
}

/** A float field; `undefined` when absent or null. */
export function floatField (obj: Record<string, unknown>, name: string, struct: string): number | undefined {
  const value = field(obj, name)
  if (value === undefined || value === null) return undefined
  // Go refuses a number a float32 cannot hold (1e39, 1e400) as it refuses a string.
  if (typeof value !== 'number' || !Number.isFinite(Math.fround(value))) throw unmarshalError(value, `Go struct field ${struct}.${name}`, 'float32')
  return value
}

/** An integer field (`int`, `int64`); `undefined` when absent or null. */
export function intField (obj: Record<string, unknown>, name: string, struct: string, goType = 'int64'): number | undefined {
  const value = field(obj, name)
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw unmarshalError(value, `Go struct field ${struct}.${name}`, goType)
  return value
}
