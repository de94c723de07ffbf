/**
 * The schedule of a scenario, run against the lab while the workload runs (Jepsen calls this part
 * the nemesis): faults set through the fault proxy, heals, and processes killed with SIGKILL and
 * started again. Every action is printed and written to the history file as it happens. Times are
 * drawn before the run starts (each entry's `atMs` plus a random part of its `jitterMs`; a flap's
 * up and down times from a generator of its own), so a seed gives the same schedule every time.
 *
 * Kills find the process by its command line (`--data-dir` of the HSM or control plane, which the
 * status report gives), not by a remembered pid: a supervised HSM has a new pid after each
 * restart. A killed HSM is restarted by its control plane's supervisor (as AWS replaces an HSM);
 * `restartAfterMs` then runs `hsmlab up`, which restarts a killed control plane (which adopts its
 * running HSMs and restarts the dead ones) and waits until every HSM is ACTIVE again. Restarts run
 * one at a time, in the background; the settle phase waits for the last one.
 */
import { readFile, readdir } from 'node:fs/promises'
import type { LabStatus } from '../lab.js'
import type { FaultDriver } from './fault-driver.js'
import { describeSelector } from './fault-driver.js'
import type { Random } from './random.js'
import { SCENARIO_FAULT_DIALECT } from './scenario-file.js'
import type { Fault, ScheduleEntry } from './scenario-file.js'
import { faultWord } from '../fault-vocabulary.js'
import type { FaultLinks } from '../fault-vocabulary.js'
import { describeError } from './hsm-sessions.js'

/** What the nemesis needs from the runner. */
export interface NemesisContext {
  /** The fault driver; undefined when the lab has no fault proxy (a schedule with faults is then refused before the run). */
  faults: FaultDriver | undefined
  /** The lab's status now (for the processes to kill). */
  status: () => Promise<LabStatus>
  /** Starts what is not running (`hsmlab up`) and waits until every HSM is ACTIVE. */
  restart: () => Promise<void>
  /** Prints one progress line and notes it in the history file. */
  log: (what: string) => void
  now: () => number
  signal: AbortSignal
}

/** One action at its drawn time. */
interface Timed { atMs: number, what: string, run: () => Promise<void> }

/** What went wrong while the schedule ran: an action the lab refused (the fault proxy, a kill). */
export interface NemesisFailure { atMs: number, what: string, cause: string }

/** Runs the schedule; see the module comment. */
export class Nemesis {
  readonly failures: NemesisFailure[] = []
  private readonly ctx: NemesisContext
  private readonly actions: Timed[] = []
  private restarting: Promise<void> = Promise.resolve()
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly running = new Set<Promise<void>>()

  /** Draws every time of the schedule from `random`, in schedule order. */
  constructor (ctx: NemesisContext, schedule: ScheduleEntry[], random: Random) {
    this.ctx = ctx
    for (const entry of schedule) {
      const atMs = entry.atMs + (entry.jitterMs > 0 ? random.int(entry.jitterMs + 1) : 0)
      switch (entry.action) {
        case 'fault': this.planFault(atMs, entry.fault, random.fork()); break
        case 'heal': this.actions.push({ atMs, what: `heal ${entry.group}`, run: async () => { await this.heal(entry.group) } }); break
        case 'kill': {
          const { target, restartAfterMs } = entry
          this.actions.push({ atMs, what: `kill ${target}`, run: async () => { await this.kill(target) } })
          if (restartAfterMs !== undefined) this.actions.push({ atMs: atMs + restartAfterMs, what: `restart ${target}`, run: async () => { this.queueRestart(`restart after killing ${target}`) } })
        }
      }
    }
    this.actions.sort((a, b) => a.atMs - b.atMs)
  }

  /** Every action of the schedule at its drawn time, in time order. */
  planned (): Array<{ atMs: number, what: string }> {
    return this.actions.map(a => ({ atMs: a.atMs, what: a.what }))
  }

  /** Starts the timers; actions run at their times until `stop()`. */
  start (): void {
    for (const action of this.actions) {
      const timer = setTimeout(() => {
        this.timers.delete(timer)
        if (this.ctx.signal.aborted) return
        const run = action.run().catch(err => { this.failed(action.atMs, 'schedule action', err) })
        this.running.add(run)
        void run.finally(() => this.running.delete(run))
      }, Math.max(0, action.atMs - this.ctx.now()))
      this.timers.add(timer)
    }
  }

  /** Cancels the actions not yet due and waits for those running (not for the restarts: `restarted()`). */
  async stop (): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    await Promise.all([...this.running])
  }

  /** Resolves once every restart queued so far has ended (call after the faults are healed: a restart may wait for an HSM to answer). */
  async restarted (): Promise<void> {
    await this.restarting
  }

  /** Queues `hsmlab up` after the restarts already queued. */
  queueRestart (why: string): void {
    this.restarting = this.restarting.then(async () => {
      const at = this.ctx.now()
      this.ctx.log(`${why}: hsmlab up`)
      try {
        await this.ctx.restart()
        this.ctx.log(`${why}: every HSM ACTIVE again after ${((this.ctx.now() - at) / 1000).toFixed(1)} s`)
      } catch (err) {
        // Not a failure of the run yet: the settle phase starts the lab again after every heal.
        this.ctx.log(`${why}: not done yet (${describeError(err)})`)
      }
    })
  }

  private failed (atMs: number, what: string, err: unknown): void {
    const cause = describeError(err)
    this.failures.push({ atMs, what, cause })
    this.ctx.log(`${what} failed: ${cause}`)
  }

  private driver (): FaultDriver {
    if (this.ctx.faults === undefined) throw new Error('the lab has no fault proxy (its status reports no faults.endpoint)')
    return this.ctx.faults
  }

  private planFault (atMs: number, fault: Fault, random: Random): void {
    switch (fault.type) {
      case 'partition': case 'blackhole': {
        this.actions.push({
          atMs,
          what: `${fault.type} ${fault.group}`,
          run: async () => {
            const links = fault.type === 'partition' ? await this.driver().partition(fault.group) : await this.driver().blackhole(fault.group)
            this.ctx.log(`fault: ${fault.type} ${fault.group} (${links.length} links)`)
          }
        })
        if (fault.durationMs !== undefined) this.actions.push({ atMs: atMs + fault.durationMs, what: `heal ${fault.group}`, run: async () => { await this.heal(fault.group) } })
        break
      }
      case 'latency': case 'reset_peer': {
        let id: number | undefined
        const toxicity = fault.toxicity ?? 1
        const what = fault.type === 'latency'
          ? `latency ${fault.ms} ms ± ${fault.jitter ?? 0} ms`
          : `reset-peer after ${fault.timeoutMs ?? 0} ms`
        const selector: FaultLinks = 'group' in fault ? { group: fault.group } : { between: fault.between }
        const word = faultWord(SCENARIO_FAULT_DIALECT, fault.type)
        this.actions.push({
          atMs,
          what: `${word} ${describeSelector(selector)}`,
          run: async () => {
            const added = await this.driver().addToxics(fault)
            id = added.id
            this.ctx.log(`fault: ${what}${toxicity < 1 ? ` on ${Math.round(toxicity * 100)}% of connections` : ''} on ${describeSelector(selector)} (${added.links.length} links)`)
          }
        })
        if (fault.durationMs !== undefined) {
          this.actions.push({
            atMs: atMs + fault.durationMs,
            what: `remove ${word} ${describeSelector(selector)}`,
            run: async () => {
              if (id === undefined) return
              await this.driver().removeToxics(id)
              this.ctx.log(`heal: ${what} on ${describeSelector(selector)} removed`)
            }
          })
        }
        break
      }
      case 'flap': {
        // Down, up, down, ... until untilMs; then healed for good.
        let at = atMs
        let down = true
        while (at < fault.untilMs) {
          const [min, max] = down ? fault.downMs : fault.upMs
          const span = Math.max(1, random.between(min, max))
          const cut = down
          this.actions.push({
            atMs: at,
            what: `${cut ? 'partition' : 'heal'} ${fault.group}`,
            run: async () => {
              if (cut) {
                const links = await this.driver().partition(fault.group)
                this.ctx.log(`fault: flap ${fault.group} down (${links.length} links)`)
              } else {
                await this.driver().heal(fault.group)
                this.ctx.log(`fault: flap ${fault.group} up`)
              }
            }
          })
          at += span
          down = !down
        }
        this.actions.push({ atMs: Math.max(at, fault.untilMs), what: `heal ${fault.group}`, run: async () => { await this.heal(fault.group) } })
      }
    }
  }

  private async heal (group: string): Promise<void> {
    if (group === 'all') {
      await this.driver().healAll()
      this.ctx.log('heal: all')
      return
    }
    const links = await this.driver().heal(group)
    this.ctx.log(`heal: ${group} (${links.length} links)`)
  }

  private async kill (target: string): Promise<void> {
    const status = await this.ctx.status()
    const [region, second, third] = target.split('/')
    const r = status.regions.find(x => x.name === region)
    let dataDir: string | undefined
    if (second === 'control-plane') dataDir = r?.controlPlane?.dataDir
    else {
      const cluster = r?.clusters.find(c => c.name === second)
      dataDir = cluster?.hsms.find(h => h.server === Number((third ?? '').slice('hsm-'.length)))?.dataDir
    }
    if (dataDir === undefined) throw new Error(`kill ${target}: the lab's status does not list it`)
    const pids = await processesServing(dataDir)
    if (pids.length === 0) {
      this.ctx.log(`kill -9 ${target}: it does not run (already killed, or restarting)`)
      return
    }
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL') } catch { /* gone meanwhile */ }
    }
    this.ctx.log(`kill -9 ${target} (pid ${pids.join(', ')})`)
  }
}

/** Pids of the processes whose command line has `--data-dir DIR` (Linux: /proc). */
export async function processesServing (dataDir: string): Promise<number[]> {
  const pids: number[] = []
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue
    try {
      const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0')
      const at = argv.indexOf('--data-dir')
      if (at !== -1 && argv[at + 1] === dataDir) pids.push(Number(name))
    } catch {
      // Gone meanwhile.
    }
  }
  return pids
}
