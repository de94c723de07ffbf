/** Options of `waitFor`. */
export interface WaitForOptions {
  /** Give up after this long. @default 10000 */
  timeoutMs?: number
  /** Poll this often. @default 20 */
  intervalMs?: number
  /** Says what was awaited, in the timeout error. */
  what?: string
}

/**
 * Polls `condition` until it returns a value other than `undefined`/`false` (or stops throwing),
 * and returns that value; throws with the last error after the deadline. Tests wait on conditions
 * like this, never on fixed sleeps.
 */
export async function waitFor<T> (condition: () => T | Promise<T>, options: WaitForOptions = {}): Promise<Exclude<T, false | undefined>> {
  const timeoutMs = options.timeoutMs ?? 10_000
  const intervalMs = options.intervalMs ?? 20
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await condition()
      if (value !== undefined && value !== false) return value as Exclude<T, false | undefined>
      lastError = undefined
    } catch (err) {
      lastError = err
    }
    if (Date.now() >= deadline) {
      const what = options.what ?? 'condition'
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ''}`, { cause: lastError })
    }
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}
