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

/** The command line cannot be understood (unknown command or option, missing argument, a cluster the lab does not have). */
export const LAB_ERR_USAGE = 'LAB_ERR_USAGE'
/** A topology file cannot be read, is not JSON, or does not describe a lab. */
export const LAB_ERR_TOPOLOGY = 'LAB_ERR_TOPOLOGY'
/** `hsmlab up --topology` names a topology other than the one the lab in DIR was made from. */
export const LAB_ERR_TOPOLOGY_CHANGED = 'LAB_ERR_TOPOLOGY_CHANGED'
/** There is no lab in DIR (no `lab.json`). */
export const LAB_ERR_NO_LAB = 'LAB_ERR_NO_LAB'
/** `lab.json` cannot be read or was written by an incompatible version. */
export const LAB_ERR_STATE = 'LAB_ERR_STATE'
/** Another `hsmlab up` or `hsmlab down` is working on the same DIR. */
export const LAB_ERR_BUSY = 'LAB_ERR_BUSY'
/** A control plane could not be started, exited before it was ready, was not ready in time, or does not answer. */
export const LAB_ERR_CONTROL_PLANE = 'LAB_ERR_CONTROL_PLANE'
/** A step of building a cluster failed: the control plane refused it, or a state was not reached in time. */
export const LAB_ERR_CLUSTER = 'LAB_ERR_CLUSTER'
/** An HSM did not become ACTIVE (its control plane could not create, restore or restart it in time). */
export const LAB_ERR_HSM_START = 'LAB_ERR_HSM_START'
/** The activation of a cluster (PRECO password change, topology users) failed on an HSM. */
export const LAB_ERR_ACTIVATION = 'LAB_ERR_ACTIVATION'
/** `hsmlab backup`: the backup could not be made. */
export const LAB_ERR_BACKUP = 'LAB_ERR_BACKUP'
/** The fault layer: the fault proxy could not be started or does not answer, a link could not be made, or a fault could not be set. */
export const LAB_ERR_FAULTS = 'LAB_ERR_FAULTS'

/** `hsmlab scenario run`: the scenario file cannot be read, is not JSON, is not a valid scenario, or names what its topology does not have. */
export const LAB_ERR_SCENARIO = 'LAB_ERR_SCENARIO'

/** `hsmlab up`: a cluster's client daemon (hsmlab-client) exited before its ready line or was not ready in time. */
export const LAB_ERR_CLIENT_DAEMON = 'LAB_ERR_CLIENT_DAEMON'
/** `hsmlab sync`: the control plane refused or failed a synchronisation operation (its words follow), or a cluster named is not created yet. */
export const LAB_ERR_SYNC = 'LAB_ERR_SYNC'
/** `hsmlab sync status` (and the other sync commands that need one): the cluster named is not the primary of a synchronisation task. */
export const LAB_ERR_NO_SYNC_TASK = 'LAB_ERR_NO_SYNC_TASK'
/** `hsmlab sync remove-resources`: a scope only grows; removing resources from it is not supported. */
export const LAB_ERR_SYNC_SCOPE_ADD_ONLY = 'LAB_ERR_SYNC_SCOPE_ADD_ONLY'

/** Every code of this package. */
export const LAB_ERROR_CODES: readonly string[] = [
  LAB_ERR_USAGE,
  LAB_ERR_TOPOLOGY,
  LAB_ERR_TOPOLOGY_CHANGED,
  LAB_ERR_NO_LAB,
  LAB_ERR_STATE,
  LAB_ERR_BUSY,
  LAB_ERR_CONTROL_PLANE,
  LAB_ERR_CLUSTER,
  LAB_ERR_HSM_START,
  LAB_ERR_ACTIVATION,
  LAB_ERR_BACKUP,
  LAB_ERR_FAULTS,
  LAB_ERR_SCENARIO,
  LAB_ERR_CLIENT_DAEMON,
  LAB_ERR_SYNC,
  LAB_ERR_NO_SYNC_TASK,
  LAB_ERR_SYNC_SCOPE_ADD_ONLY
]
