/**
 * Checks the JSON files a person writes for the lab (topologies, scenarios) and collects every
 * problem with its place in the file, so that one run lists them all.
 */

/** A JSON object as parsed. */
export type Json = Record<string, unknown>

/** A short description of a wrong value, for messages. */
export function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)
  if (typeof value === 'object') return 'an object'
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- only a number, boolean or undefined is left
  return String(value)
}

/** Collects problems with their path in the file. */
export class FileChecker {
  readonly problems: string[] = []

  fail (path: string, message: string): void {
    this.problems.push(`${path}: ${message}`)
  }

  object (path: string, value: unknown, allowed: readonly string[]): Json | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.fail(path, `must be an object, not ${describe(value)}`)
      return undefined
    }
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) this.fail(path, `unknown field "${key}" (allowed: ${allowed.join(', ')})`)
    }
    return value as Json
  }

  string (path: string, value: unknown, pattern: RegExp, rule: string): string | undefined {
    if (value === undefined) { this.fail(path, `is missing (${rule})`); return undefined }
    if (typeof value !== 'string' || !pattern.test(value)) { this.fail(path, `must be ${rule}, not ${describe(value)}`); return undefined }
    return value
  }

  array (path: string, value: unknown, minLength: number): unknown[] | undefined {
    if (value === undefined) { this.fail(path, `is missing (an array of at least ${minLength})`); return undefined }
    if (!Array.isArray(value)) { this.fail(path, `must be an array, not ${describe(value)}`); return undefined }
    if (value.length < minLength) { this.fail(path, `must list at least ${minLength}`); return undefined }
    return value as unknown[]
  }
}
