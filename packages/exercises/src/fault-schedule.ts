/**
 * Faults on a schedule (exercise.json `schedule`): network faults set and healed while the learner
 * works, at times counted from the end of `start`, like a link that fails in the middle of a
 * procedure. `start` runs them in a process of their own (`hsmlab-exercise _schedule --dir DIR`,
 * detached: the learner's shell returns at once), which applies each entry at its time through the
 * lab's fault proxy, writes what it did to DIR/exercise/schedule.log (one JSON object a line) and
 * exits after the last entry, or as soon as the lab is gone. `start` and `reset` stop the one of
 * the exercise they replace.
 */
import { spawn } from 'node:child_process'
import { appendFile, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { applyFault, healFaults } from '@hsmlab/lab'
import type { LabFault } from '@hsmlab/lab'

/** One entry: at `atSeconds` after the exercise started, set `fault` or heal (`heal.group`, or everything). */
export type ScheduledFault =
  | { atSeconds: number, fault: LabFault }
  | { atSeconds: number, heal: { group?: string } }

/** The longest a schedule may run: a day, in seconds. */
export const SCHEDULE_SECONDS_MAX = 86_400

const BIN_PATH = fileURLToPath(new URL('./bin/hsmlab-exercise.js', import.meta.url))

/** The log of the schedule of the exercise in `dir`. */
export function scheduleLogFile (dir: string): string { return join(dir, 'exercise', 'schedule.log') }

/** What is wrong with a schedule entry (its faults are checked against the topology elsewhere), or undefined. */
export function checkScheduleEntry (raw: unknown): string | undefined {
  const e = raw as Record<string, unknown> | null
  if (e === null || typeof e !== 'object' || Array.isArray(e)) return 'an entry is {"atSeconds": N, "fault": {...}} or {"atSeconds": N, "heal": {"group"?: "..."}}'
  if (typeof e.atSeconds !== 'number' || !(e.atSeconds >= 0 && e.atSeconds <= SCHEDULE_SECONDS_MAX)) return `"atSeconds" must be a number of seconds from 0 to ${SCHEDULE_SECONDS_MAX}`
  const keys = Object.keys(e).filter(k => k !== 'atSeconds')
  if (keys.length !== 1 || (keys[0] !== 'fault' && keys[0] !== 'heal')) return 'an entry has "atSeconds" and one of "fault" or "heal"'
  if (keys[0] === 'heal') {
    const h = e.heal as Record<string, unknown> | null
    if (h === null || typeof h !== 'object' || (h.group !== undefined && typeof h.group !== 'string')) return '"heal" is {} or {"group": "..."}'
  }
  return undefined
}

/** Starts the schedule's process for the exercise in `dir`; resolves with its pid. */
export function spawnSchedule (dir: string): number {
  const child = spawn(process.execPath, [BIN_PATH, '_schedule', '--dir', dir], { detached: true, stdio: 'ignore' })
  child.unref()
  return child.pid ?? 0
}

/** Stops the schedule's process `pid` of the exercise in `dir`, if it still runs (and is that process). */
export async function stopSchedule (pid: number | undefined, dir: string): Promise<void> {
  if (pid === undefined || pid <= 0) return
  try {
    // Only that process: a pid may have been given to another one since.
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8')
    if (!cmdline.includes('_schedule') || !cmdline.includes(dir)) return
  } catch {
    return
  }
  try { process.kill(pid, 'SIGTERM') } catch { /* gone meanwhile */ }
}

/** How often a waiting schedule looks whether its exercise is still there, in milliseconds. */
const STILL_THERE_POLL_MS = 1000

/**
 * Runs the schedule: each entry at `startedAtMs + atSeconds`, in time order; resolves after the
 * last, or once `stillWanted` says no (the exercise was purged or replaced) while it waits.
 */
export async function runSchedule (dir: string, entries: readonly ScheduledFault[], startedAtMs: number, stillWanted: () => boolean = () => true): Promise<void> {
  const log = async (line: Record<string, unknown>): Promise<void> => { await appendFile(scheduleLogFile(dir), JSON.stringify({ at: new Date().toISOString(), ...line }) + '\n') }
  for (const entry of [...entries].sort((a, b) => a.atSeconds - b.atSeconds)) {
    for (let waitMs = startedAtMs + entry.atSeconds * 1000 - Date.now(); waitMs > 0; waitMs = startedAtMs + entry.atSeconds * 1000 - Date.now()) {
      await new Promise(resolve => setTimeout(resolve, Math.min(waitMs, STILL_THERE_POLL_MS)))
      if (!stillWanted()) return
    }
    try {
      if ('fault' in entry) await log({ atSeconds: entry.atSeconds, set: entry.fault, links: (await applyFault({ dir, fault: entry.fault })).links })
      else await log({ atSeconds: entry.atSeconds, healed: entry.heal.group ?? 'everything', links: (await healFaults({ dir, ...(entry.heal.group === undefined ? {} : { group: entry.heal.group }) })).links })
    } catch (err) {
      // The lab is gone (down, purged) or its fault proxy does not answer: nothing left to do.
      await log({ atSeconds: entry.atSeconds, stopped: (err as Error).message }).catch(() => undefined)
      return
    }
  }
}
