/**
 * The random values of an exercise (`random` in exercise.json), drawn from its seed: passwords the
 * learner does not need, which keys a partition leaves behind, a label. Each value is drawn from
 * its own stream, `sha256(seed:name:n)`, so adding a value to an exercise does not change the
 * others, and the same seed gives the same exercise on every machine.
 */
import { createHash } from 'node:crypto'

/** One value's recipe. */
export type RandomSpec =
  | { password: true }
  | { oneOf: unknown[] }
  | { sample: unknown[], count: number }
  | { int: [number, number] }

/** A value substituted for `{{name}}`: a string, a number, or a list of them. */
export type ExerciseValue = string | number | boolean | ExerciseValue[]

/** The draws of one value: numbers in [0, 1). */
function stream (seed: number, name: string): () => number {
  let n = 0
  return () => {
    const digest = createHash('sha256').update(`${seed}:${name}:${n++}`).digest()
    return digest.readUInt32BE(0) / 0x1_0000_0000
  }
}

// No 0/O or 1/l/I: a learner may have to read a password off the screen.
const PASSWORD_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789'

/** The value of `spec` for `seed`. */
export function drawValue (seed: number, name: string, spec: RandomSpec): ExerciseValue {
  const next = stream(seed, name)
  const pick = (n: number): number => Math.floor(next() * n)
  if ('password' in spec) {
    // Starts with a capital and ends with digits, 7 to 32 characters as the HSMs accept.
    let out = PASSWORD_ALPHABET[pick(23)] ?? 'A'
    for (let i = 0; i < 7; i++) out += PASSWORD_ALPHABET[pick(PASSWORD_ALPHABET.length)] ?? 'x'
    return out + String(10 + pick(90))
  }
  if ('oneOf' in spec) return spec.oneOf[pick(spec.oneOf.length)] as ExerciseValue
  if ('sample' in spec) {
    // A partial Fisher–Yates shuffle of the indexes, the chosen ones then kept in list order.
    const indexes = spec.sample.map((_, i) => i)
    for (let i = 0; i < spec.count; i++) {
      const j = i + pick(indexes.length - i)
      const a = indexes[i] as number
      indexes[i] = indexes[j] as number
      indexes[j] = a
    }
    return indexes.slice(0, spec.count).sort((a, b) => a - b).map(i => spec.sample[i] as ExerciseValue)
  }
  const [min, max] = spec.int
  return min + pick(max - min + 1)
}

/** A new seed, when none is given: a whole number a person can type again. */
export function newSeed (): number {
  return Math.floor(Math.random() * 1_000_000_000)
}

// `{{name}}`, or `{{name[N]}}` for one element of a list.
const PLACEHOLDER = /\{\{([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?\}\}/g

const EACH = /\{\{([A-Za-z_][A-Za-z0-9_]*)\[\]\}\}/

/**
 * `text` with every `{{name}}` replaced by its value (lists joined with ', '); unknown names are
 * left as they are; `{{name[N]}}` is element N of a list. A line with `{{name[]}}` is written once per element of the list `name` (a
 * command to type for each key the setup left behind, say).
 */
export function substitute (text: string, values: Readonly<Record<string, ExerciseValue>>): string {
  const lines = text.split('\n').flatMap(line => {
    const each = EACH.exec(line)?.[1]
    if (each === undefined || !Object.hasOwn(values, each)) return [line]
    const list = values[each]
    return (Array.isArray(list) ? list : [list as ExerciseValue]).map(v => line.split(`{{${each}[]}}`).join(String(v)))
  })
  return lines.join('\n').replace(PLACEHOLDER, (whole, name: string, index?: string) => {
    if (!Object.hasOwn(values, name)) return whole
    let v = values[name] as ExerciseValue
    if (index !== undefined) {
      if (!Array.isArray(v) || v[Number(index)] === undefined) return whole
      v = v[Number(index)] as ExerciseValue
    }
    return Array.isArray(v) ? v.join(', ') : String(v)
  })
}

/**
 * A JSON value with every `{{name}}` replaced: a string that is exactly one placeholder becomes
 * the value itself (a number stays a number, a list a list), any other string gets the text.
 */
export function substituteJson (value: unknown, values: Readonly<Record<string, ExerciseValue>>): unknown {
  if (typeof value === 'string') {
    const exact = /^\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}$/.exec(value)?.[1]
    if (exact !== undefined && Object.hasOwn(values, exact)) return values[exact]
    return substitute(value, values)
  }
  if (Array.isArray(value)) return value.map(v => substituteJson(v, values))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteJson(v, values)]))
  }
  return value
}

/** The names of the placeholders in `text` (`{{name}}` and `{{name[]}}`). */
export function placeholdersOf (text: string): string[] {
  return [...text.matchAll(/\{\{([A-Za-z_][A-Za-z0-9_]*)(\[\d*\])?\}\}/g)].map(m => m[1] as string)
}
