/**
 * Errors of the HSM package (the process, not the wire: failures a client sees travel as
 * `WireError` return codes). Callers branch on `code`, never on the class; every code is listed
 * in `HSM_ERROR_CODES` so that docs and a test can keep in step with it.
 */
export class HsmError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = 'HsmError'
  }
}

/** `provisionHsm` was pointed at a data directory that already holds an HSM (or part of one). */
export const HSM_ERR_ALREADY_PROVISIONED = 'HSM_ERR_ALREADY_PROVISIONED'
/** The data directory holds no provisioned HSM (no `storage.key`, or no identity in `meta`). */
export const HSM_ERR_NOT_PROVISIONED = 'HSM_ERR_NOT_PROVISIONED'
/** A manufacturer key file cannot be read or is not a manufacturer key. */
export const HSM_ERR_MANUFACTURER_KEY = 'HSM_ERR_MANUFACTURER_KEY'
/** `storage.key` cannot be unsealed: another manufacturer key, or the file was changed. */
export const HSM_ERR_STORAGE_KEY = 'HSM_ERR_STORAGE_KEY'
/** A store of the data directory refused to load (tampered, unreadable, unknown format). */
export const HSM_ERR_STORE_LOAD = 'HSM_ERR_STORE_LOAD'
/** Another live process serves the data directory (its pid is in `hsm.pid`). */
export const HSM_ERR_DATA_DIR_LOCKED = 'HSM_ERR_DATA_DIR_LOCKED'
/** An option or argument is out of range or malformed. */
export const HSM_ERR_INVALID_ARGUMENT = 'HSM_ERR_INVALID_ARGUMENT'
/** The server could not listen on the requested host and port. */
export const HSM_ERR_LISTEN = 'HSM_ERR_LISTEN'
/** A provision file (`--provision`) cannot be read, is malformed, or its identity does not check out. */
export const HSM_ERR_PROVISION_FILE = 'HSM_ERR_PROVISION_FILE'
/** Bytes that are not an hsmlab backup: bad magic, unsupported version, truncated, unreadable header. */
export const HSM_ERR_BACKUP_FORMAT = 'HSM_ERR_BACKUP_FORMAT'
/** A backup failed authentication: a byte of its header or content was changed. */
export const HSM_ERR_BACKUP_TAMPERED = 'HSM_ERR_BACKUP_TAMPERED'
/** A backup was made by an HSM of another manufacturer key: this HSM cannot open it. */
export const HSM_ERR_BACKUP_FOREIGN = 'HSM_ERR_BACKUP_FOREIGN'

/** Every code of this package. */
export const HSM_ERROR_CODES: readonly string[] = [
  HSM_ERR_ALREADY_PROVISIONED,
  HSM_ERR_NOT_PROVISIONED,
  HSM_ERR_MANUFACTURER_KEY,
  HSM_ERR_STORAGE_KEY,
  HSM_ERR_STORE_LOAD,
  HSM_ERR_DATA_DIR_LOCKED,
  HSM_ERR_INVALID_ARGUMENT,
  HSM_ERR_LISTEN,
  HSM_ERR_PROVISION_FILE,
  HSM_ERR_BACKUP_FORMAT,
  HSM_ERR_BACKUP_TAMPERED,
  HSM_ERR_BACKUP_FOREIGN
]

/**
 * Exit codes of the `hsmlab-hsm` process: 0 after a requested stop; 1 for bad arguments or any
 * other failure to start; 2 when the data directory cannot be loaded (a tampered or unreadable
 * store, a storage key that does not open with the manufacturer key, an unprovisioned directory,
 * an unreadable manufacturer key file) or cannot be made from `--provision` (a malformed
 * provision file, a tampered, foreign or unreadable backup), with the reason naming the file on
 * stderr.
 */
export const HSM_EXIT_CODES = { ok: 0, failure: 1, dataUnloadable: 2 } as const
