/**
 * Errors of the store package. Callers branch on `code`, never on the class: across a process
 * boundary only the code survives. Every code is listed, with what to do, in the package README;
 * a test keeps the two in step.
 */
export class StoreError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = 'StoreError'
  }
}

/**
 * A store file does not hold what this store wrote: a byte was changed, a record is missing or
 * out of order, or the file was sealed under another storage key. The store refuses to load.
 */
export const STORE_ERR_TAMPERED = 'STORE_ERR_TAMPERED'
/** A store file authenticated but its contents are not a store record this version understands. */
export const STORE_ERR_FORMAT = 'STORE_ERR_FORMAT'
/**
 * Reading, writing or syncing a store file failed. After a failed write the store accepts no
 * more changes (the file's state is unknown); reopen it to recover. A full disk is not this but
 * `STORE_ERR_NO_SPACE`.
 */
export const STORE_ERR_IO = 'STORE_ERR_IO'
/**
 * A write found the file system full (ENOSPC, or EDQUOT: over quota). The store rolled its WAL
 * back to the last acknowledged record, so nothing of the rejected batch was kept, and it goes on
 * serving reads and taking writes: the next write succeeds once there is space again.
 */
export const STORE_ERR_NO_SPACE = 'STORE_ERR_NO_SPACE'
/** `apply` was called after `close`. */
export const STORE_ERR_CLOSED = 'STORE_ERR_CLOSED'
/** More bytes wait to be written than `queuedBytesMax` allows; retry once earlier writes finish. */
export const STORE_ERR_BUSY = 'STORE_ERR_BUSY'
/** A change or an option is malformed: unknown op, id not a string, value msgpack cannot encode. */
export const STORE_ERR_INVALID_ARGUMENT = 'STORE_ERR_INVALID_ARGUMENT'
