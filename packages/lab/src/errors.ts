/**
 * Errors of the lab. Callers (the `hsmlab` bin, scripts, tests) branch on `code`, never on the
 * class; every code is listed in `LAB_ERROR_CODES` and documented in docs/lab.md, and a unit test
 * keeps the two in step.
 */
export class LabError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = 'LabError'
  }
}

/** The command line cannot be understood (unknown command or option, missing argument). */
export const LAB_ERR_USAGE = 'LAB_ERR_USAGE'
/** A topology file cannot be read, is not JSON, or does not describe a lab. */
export const LAB_ERR_TOPOLOGY = 'LAB_ERR_TOPOLOGY'
/** The topology asks for something this version of the lab cannot build yet (`cloneOf`). */
export const LAB_ERR_UNSUPPORTED = 'LAB_ERR_UNSUPPORTED'
/** `hsmlab up --topology` names a topology other than the one the lab in DIR was made from. */
export const LAB_ERR_TOPOLOGY_CHANGED = 'LAB_ERR_TOPOLOGY_CHANGED'
/** There is no lab in DIR (no `lab.json`). */
export const LAB_ERR_NO_LAB = 'LAB_ERR_NO_LAB'
/** `lab.json` cannot be read or was written by an incompatible version. */
export const LAB_ERR_STATE = 'LAB_ERR_STATE'
/** Another `hsmlab up` or `hsmlab down` is working on the same DIR. */
export const LAB_ERR_BUSY = 'LAB_ERR_BUSY'
/** An HSM process could not be provisioned, exited before it was ready, or was not ready in time. */
export const LAB_ERR_HSM_START = 'LAB_ERR_HSM_START'
/** An HSM refused the signed list of its peers. */
export const LAB_ERR_PEERS = 'LAB_ERR_PEERS'
/** The activation of a cluster (PRECO password change, topology users) failed on an HSM. */
export const LAB_ERR_ACTIVATION = 'LAB_ERR_ACTIVATION'

/** Every code of this package. */
export const LAB_ERROR_CODES: readonly string[] = [
  LAB_ERR_USAGE,
  LAB_ERR_TOPOLOGY,
  LAB_ERR_UNSUPPORTED,
  LAB_ERR_TOPOLOGY_CHANGED,
  LAB_ERR_NO_LAB,
  LAB_ERR_STATE,
  LAB_ERR_BUSY,
  LAB_ERR_HSM_START,
  LAB_ERR_PEERS,
  LAB_ERR_ACTIVATION
]
