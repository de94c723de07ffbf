/**
 * The scenario's random choices: one seeded generator (the fault proxy's sfc32), from which every
 * workload client and every randomised schedule entry gets a generator of its own, drawn in a
 * fixed order before the run starts. A client's choices (which operation, which key or user,
 * which HSM, its pauses) then depend only on the seed and on what the client saw, not on how the
 * clients interleave.
 */
import { Prng } from '@hsmlab/fault-proxy'

/** A seeded generator with the draws the runner needs. */
export class Random {
  private readonly prng: Prng

  constructor (seed: number) {
    this.prng = new Prng(seed)
  }

  /** A generator of its own for a part of the run, seeded from this one. */
  fork (): Random {
    return new Random(this.prng.nextUint32() * 2048 + this.prng.nextInt(2048))
  }

  /** A whole number in [0, n). */
  int (n: number): number {
    return this.prng.nextInt(n)
  }

  /** A whole number in [min, max]. */
  between (min: number, max: number): number {
    return min + this.prng.nextInt(max - min + 1)
  }

  /** One element of a non-empty list. */
  pick<T> (list: readonly T[]): T {
    const item = list[this.prng.nextInt(list.length)]
    if (item === undefined) throw new RangeError('pick from an empty list')
    return item
  }

  /** One element, likelier in proportion to its weight. */
  weighted<T extends { weight: number }> (list: readonly T[]): T {
    const total = list.reduce((sum, x) => sum + x.weight, 0)
    let at = this.prng.nextInt(total)
    for (const item of list) {
      if (at < item.weight) return item
      at -= item.weight
    }
    return this.pick(list)
  }

  /** A string of letters and digits. */
  word (length: number): string {
    const alphabet = 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789'
    let out = ''
    for (let i = 0; i < length; i++) out += alphabet[this.prng.nextInt(alphabet.length)]
    return out
  }
}
