/**
 * The one seeded pseudo-random generator of a fault proxy. Every random draw (toxicity, latency
 * jitter, slicer sizes) comes from it, in the order the events that need them happen, so that a
 * run replayed with the same seed and the same sequence of events draws the same numbers
 * (TigerBeetle's Vortex: one PRNG per faulty network, seed printed for replay).
 *
 * The generator is sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, 128 bits of state),
 * seeded from the 64-bit seed through splitmix32.
 */
import { randomInt } from 'node:crypto'

/** A fresh seed for a run that was not given one: a non-negative integer below 2^47. */
export function randomSeed (): number {
  return randomInt(0, 2 ** 47)
}

/** True when `value` can seed a `Prng`: an integer of at most 2^53 - 1 in absolute value. */
export function isValidSeed (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value)
}

function splitmix32 (state: number): () => number {
  let s = state | 0
  return () => {
    s = (s + 0x9e3779b9) | 0
    let t = s ^ (s >>> 16)
    t = Math.imul(t, 0x21f0aaad)
    t ^= t >>> 15
    t = Math.imul(t, 0x735a2d97)
    return (t ^ (t >>> 15)) >>> 0
  }
}

export class Prng {
  readonly seed: number
  #a: number
  #b: number
  #c: number
  #d: number

  constructor (seed: number) {
    if (!isValidSeed(seed)) throw new RangeError(`seed must be a safe integer, not ${String(seed)}`)
    this.seed = seed
    const wide = BigInt.asUintN(64, BigInt(seed))
    const low = Number(wide & 0xffffffffn)
    const high = Number(wide >> 32n)
    const mixLow = splitmix32(low)
    const mixHigh = splitmix32(high ^ 0x5bd1e995)
    this.#a = mixLow()
    this.#b = mixHigh()
    this.#c = mixLow()
    this.#d = mixHigh()
    // Warm up so that nearby seeds diverge.
    for (let i = 0; i < 16; i++) this.nextUint32()
  }

  /** A uniform integer in [0, 2^32). */
  nextUint32 (): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0
    this.#d = (this.#d + 1) | 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) | 0
    this.#c = (this.#c << 21) | (this.#c >>> 11)
    this.#c = (this.#c + t) | 0
    return t >>> 0
  }

  /** A uniform float in [0, 1) with 32 random bits, as Go's `rand.Float32` gives toxicity draws. */
  nextFloat (): number {
    return this.nextUint32() / 4294967296
  }

  /** A uniform integer in [0, n) for 1 ≤ n ≤ 2^53; 0 when n < 1. */
  nextInt (n: number): number {
    if (!(n >= 1)) return 0
    if (n <= 4294967296) return Math.floor(this.nextFloat() * n)
    const wide = this.nextUint32() * 4294967296 + this.nextUint32()
    return wide % Math.floor(n)
  }
}
