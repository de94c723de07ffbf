/**
 * How to start an HSM process. Whatever spawns `hsmlab-hsm` (the lab, the control plane) runs
 *
 * ```ts
 * spawn(process.execPath, [...HSM_NODE_ARGS, HSM_BIN_PATH, ...flags], { env: { ...process.env, ...HSM_PROCESS_ENV } })
 * ```
 *
 * An HSM is a small server: a few MiB of live objects (about 3 KiB per key), requests that
 * allocate little and briefly, and many of them running side by side on one machine. Node's
 * defaults are sized for large services, and they cost an idle HSM more than its own data; these
 * settings size it for what it is. Measured with scripts/bench/run.js (RSS of an activated, idle
 * HSM of a 3-HSM cluster): about 85 MiB with Node's defaults, 57 to 59 with these; they also hold an HSM
 * with 3,300 keys near 75 MiB, where the young generation alone would grow to 32. None changes
 * what the HSM does.
 */

/**
 * Node and V8 options placed before the script.
 *
 * - `--max-semi-space-size=1`: the young generation stays at 2 × 1 MiB instead of growing to
 *   2 × 16 MiB under a burst of requests (and staying there); short-lived request garbage is
 *   collected a little more often instead.
 * - `--heap-growing-percent=50`: after a full collection the old generation may grow by half of
 *   what survived before the next one, instead of doubling or more; with 3,300 keys that keeps an
 *   HSM near 75 MiB instead of 90. (`--optimize-for-size` does the same and more, but its smaller
 *   compiler budgets cost about a third more CPU per request.)
 * - `--single-threaded-gc`: no helper threads for a heap this small; their per-thread buffers
 *   and malloc arenas would outweigh the pause time they save.
 * - `--v8-pool-size=1`: one background thread for V8's compiler instead of four; each thread
 *   keeps its own malloc arena and stack.
 */
export const HSM_NODE_ARGS: readonly string[] = Object.freeze([
  '--max-semi-space-size=1',
  '--heap-growing-percent=50',
  '--single-threaded-gc',
  '--v8-pool-size=1'
])

/**
 * Environment variables added to the spawner's.
 *
 * - `MALLOC_MMAP_THRESHOLD_=131072` (glibc): blocks of 128 KiB and more are mapped and returned
 *   to the system when freed. By default glibc raises that threshold after the first large block
 *   is freed, so the 4 MiB that scrypt needs for every login and password change (N = 4096,
 *   r = 8) then stays in the malloc arena of whichever thread-pool thread ran it: up to 16 MiB
 *   kept by an idle HSM. Other C libraries ignore the variable.
 */
export const HSM_PROCESS_ENV: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_MMAP_THRESHOLD_: '131072'
})
