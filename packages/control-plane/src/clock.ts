/**
 * The lab clock: lab time runs `speed` times as fast as real time, so that retention windows,
 * deletion windows and daily backups can be watched in a lab session. It is anchored (a real
 * instant and the lab instant it maps to) in the state file, so lab time never jumps backwards
 * across restarts, also when the speed changes between two runs.
 */

/** Where lab time stood at one real instant. */
export interface ClockAnchor {
  realMs: number
  labMs: number
  speed: number
}

/** Lab time, from an anchor; every API timestamp is lab time. */
export class LabClock {
  readonly speed: number
  private readonly anchor: ClockAnchor
  private readonly realNow: () => number

  constructor (anchor: ClockAnchor, realNow: () => number = Date.now) {
    this.anchor = anchor
    this.speed = anchor.speed
    this.realNow = realNow
  }

  /** A clock for a fresh data directory (lab time = real time now), or re-anchored at a new speed. */
  static anchored (previous: ClockAnchor | undefined, speed: number, realNow: () => number = Date.now): LabClock {
    const realMs = realNow()
    const labMs = previous === undefined ? realMs : previous.labMs + (realMs - previous.realMs) * previous.speed
    return new LabClock({ realMs, labMs: Math.max(labMs, previous?.labMs ?? labMs), speed }, realNow)
  }

  /** The anchor to persist. */
  toJSON (): ClockAnchor {
    return { ...this.anchor }
  }

  /** Lab time now, in milliseconds since the epoch. */
  now (): number {
    return Math.round(this.anchor.labMs + (this.realNow() - this.anchor.realMs) * this.anchor.speed)
  }

  /** Real milliseconds that `labMs` lab milliseconds take. */
  realDuration (labMs: number): number {
    return labMs / this.anchor.speed
  }
}

/** Milliseconds in a lab day. */
export const DAY_MS = 86_400_000
