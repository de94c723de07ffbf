/**
 * A deliberately small runtime shape checker for request arguments. Every operation's arguments
 * are checked before a handler sees them, so a handler can trust the types its signature states.
 */
export type FieldType = 'string' | 'int' | 'bool' | 'bytes' | 'int[]' | 'string[]' | 'bytes[]' | 'object' | 'object[]' | 'int|string'

/** One field of an argument object. */
export interface FieldSpec {
  type: FieldType
  optional?: boolean
  /** Allowed values, for strings and integers. */
  oneOf?: ReadonlyArray<string | number>
  /** Inclusive bounds for integers, and for string, byte and array lengths. */
  min?: number
  max?: number
}

/** The fields of an operation's argument object; any other field is refused. */
export type ObjectSpec = Readonly<Record<string, FieldSpec>>

function isInt (v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v)
}

function lengthOf (v: unknown): number | undefined {
  if (typeof v === 'string' || v instanceof Uint8Array || Array.isArray(v)) return v.length
  return undefined
}

function typeMatches (type: FieldType, v: unknown): boolean {
  switch (type) {
    case 'string': return typeof v === 'string'
    case 'int': return isInt(v)
    case 'bool': return typeof v === 'boolean'
    case 'bytes': return v instanceof Uint8Array
    case 'int[]': return Array.isArray(v) && v.every(isInt)
    case 'string[]': return Array.isArray(v) && v.every(x => typeof x === 'string')
    case 'bytes[]': return Array.isArray(v) && v.every(x => x instanceof Uint8Array)
    case 'object': return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
    case 'object[]': return Array.isArray(v) && v.every(x => typeof x === 'object' && x !== null && !Array.isArray(x))
    case 'int|string': return isInt(v) || typeof v === 'string'
  }
}

/**
 * Returns `undefined` when `value` fits `spec`, otherwise a sentence saying which field is wrong
 * and why.
 */
export function checkShape (spec: ObjectSpec, value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    return 'arguments must be a map'
  }
  const record = value as Record<string, unknown>
  // Own names only: `name in spec` would take `constructor` or `toString` for arguments.
  for (const name of Object.keys(record)) {
    if (!Object.hasOwn(spec, name)) return `unknown argument '${name}'`
  }
  for (const [name, field] of Object.entries(spec)) {
    const v = record[name]
    if (v === undefined) {
      if (field.optional === true) continue
      return `missing argument '${name}'`
    }
    if (!typeMatches(field.type, v)) return `argument '${name}' must be of type ${field.type}`
    if (field.oneOf !== undefined && !field.oneOf.includes(v as string | number)) {
      return `argument '${name}' must be one of ${field.oneOf.join(', ')}`
    }
    const size = isInt(v) ? v : lengthOf(v)
    if (size !== undefined) {
      if (field.min !== undefined && size < field.min) return `argument '${name}' is below the minimum of ${field.min}`
      if (field.max !== undefined && size > field.max) return `argument '${name}' is above the maximum of ${field.max}`
    }
  }
  return undefined
}
