/**
 * A first-in, first-out queue that runs at most `concurrency` tasks at a time: all the HSM needs
 * of a task queue (user changes one at a time, pushes to one peer a few at a time). It replaces
 * p-queue, whose modules took about 10 ms of every HSM start to load.
 *
 * ```ts
 * const queue = new TaskQueue(8)
 * const result = await queue.add(async () => await work())   // runs now, or once a slot frees
 * queue.size                                                   // tasks still waiting
 * ```
 */
export class TaskQueue {
  readonly #concurrency: number
  readonly #waiting: Array<() => void> = []
  #running = 0

  /** `concurrency`: tasks that may run at once, at least 1 (Infinity for no limit). */
  constructor (concurrency: number) {
    if (!(concurrency >= 1)) throw new RangeError(`a task queue runs at least one task at a time, not ${concurrency}`)
    this.#concurrency = concurrency
  }

  /** Tasks waiting for their turn (not counting those running). */
  get size (): number {
    return this.#waiting.length
  }

  /** Runs `task` once the tasks added before it have started and a slot is free; settles as the task does. */
  async add<T> (task: () => Promise<T>): Promise<T> {
    if (this.#running < this.#concurrency) this.#running++
    else await new Promise<void>(resolve => { this.#waiting.push(resolve) })
    try {
      return await task()
    } finally {
      // The slot passes straight to the next task, so a task added meanwhile cannot take it first.
      const next = this.#waiting.shift()
      if (next !== undefined) next()
      else this.#running--
    }
  }
}
