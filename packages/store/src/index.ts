/**
 * @packageDocumentation
 * The encrypted, crash-safe store each HSM keeps its users, keys and metadata in: a map from ids
 * to plain-data values, changed in atomic batches that are durable (write-ahead log, fsync,
 * group commit, snapshots by atomic rename) before `apply` resolves. Every record and snapshot is
 * sealed under a storage key, and a sealed manifest says how far they got, so a changed byte, a
 * missing record, a file put back from an earlier copy, cut short or deleted, or the wrong key
 * makes `openStore` refuse with `STORE_ERR_TAMPERED` and say which file and why; a record torn by
 * a crash is dropped. `memoryStore` has the same semantics without the disk.
 *
 * @example
 * ```ts
 * import { deriveKey } from '@hsmlab/crypto'
 * import { openStore } from '@hsmlab/store'
 * const users = await openStore<{ type: string, name: string }>({ dir: dataDir, name: 'users', key: deriveKey(storageKey, 'users') })
 * await users.apply([{ op: 'put', id: 'alice', value: { type: 'CU', name: 'alice' } }])
 * users.get('alice') // { type: 'CU', name: 'alice' }, frozen; durable since apply resolved
 * await users.close()
 * ```
 */
export {
  StoreError,
  STORE_ERR_BUSY,
  STORE_ERR_CLOSED,
  STORE_ERR_FORMAT,
  STORE_ERR_INVALID_ARGUMENT,
  STORE_ERR_IO,
  STORE_ERR_NO_SPACE,
  STORE_ERR_TAMPERED
} from './errors.js'
export { openStore } from './disk-store.js'
export { memoryStore } from './memory-store.js'
export type { Change, Store, StoreOptions } from './store.js'
