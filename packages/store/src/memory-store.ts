/**
 * The in-memory store: the same semantics as the on-disk store (values checked, encoded and
 * decoded the same way, changes visible only once `apply` resolves, in call order), without
 * durability. For tests and for parts of the lab that need no persistence.
 */
import { StoreError, STORE_ERR_CLOSED } from './errors.js'
import { encodeChanges } from './record-codec.js'
import { applyChanges } from './store.js'
import type { Change, Store } from './store.js'

/** A store kept in memory only. */
export class MemoryStore<V> implements Store<V> {
  readonly #state = new Map<string, V>()
  #closed = false

  get (id: string): V | undefined {
    return this.#state.get(id)
  }

  has (id: string): boolean {
    return this.#state.has(id)
  }

  values (): IterableIterator<V> {
    return this.#state.values()
  }

  entries (): IterableIterator<[string, V]> {
    return this.#state.entries()
  }

  get size (): number {
    return this.#state.size
  }

  async apply (changes: Array<Change<V>>): Promise<void> {
    if (this.#closed) throw new StoreError(STORE_ERR_CLOSED, 'the store is closed: apply was called after close')
    const checked = encodeChanges(changes).map(c => c.change)
    // Wait one microtask, as the disk store waits for the disk, so that no caller can come to
    // rely on a change being visible before its apply resolves. Microtasks run in order, so
    // batches still apply in call order.
    await Promise.resolve()
    applyChanges(this.#state, checked)
  }

  async close (): Promise<void> {
    this.#closed = true
  }
}

/** A store in memory, with the same semantics as `openStore` and no durability. */
export function memoryStore<V> (): Store<V> {
  return new MemoryStore<V>()
}
