/**
 * The synchronisation role of this HSM (issue 12): 'none', 'replica' of a primary cluster's
 * synchronisation task, or 'disassociated' from it for good. The control plane sets it with
 * setSyncRole, signed by the cluster's trust anchor; it is kept in the sealed meta store
 * (`SyncRoleRecord`), so it survives a restart and cannot be edited on disk unnoticed.
 *
 * While the role is 'replica' or 'disassociated', every client change to a key or a user is
 * refused (`refuseClientChange`, RET_SYNC_REPLICA_READ_ONLY naming the primary): only the
 * synchronisation task (syncApply) and in-cluster replication change the replica, so nothing a
 * client does there can make it diverge from the primary. Reads, logins and cryptography with
 * existing keys go on; so do session keys, which live on one HSM and die with the session.
 * 'disassociated' is final: the seed says "the association ... cannot be re-established" and
 * "synchronized resources in the replica instance are retained but cannot be modified".
 */
import { ReturnCode, WireError } from '@hsmlab/protocol'
import type { SyncRole } from '@hsmlab/protocol'
import type { Store } from '@hsmlab/store'
import type { HsmContext } from './context.js'
import { META_SYNC_ROLE } from './data-dir.js'
import type { MetaRecord, SyncRoleRecord } from './data-dir.js'

/** The role an HSM holds, and the version it was set with (-1 before any setSyncRole). */
export interface SyncRoleState {
  role: SyncRole
  primaryClusterId?: string
  version: number
}

/** The durable synchronisation role of one HSM, in its meta store. */
export class SyncRoleBook {
  private readonly meta: Store<MetaRecord>

  constructor (meta: Store<MetaRecord>) {
    this.meta = meta
  }

  /** The role now: 'none' (version -1) until the first setSyncRole. */
  current (): SyncRoleState {
    const record = this.meta.get(META_SYNC_ROLE)
    if (record?.kind !== 'sync-role') return { role: 'none', version: -1 }
    const state: SyncRoleState = { role: record.role, version: record.version }
    if (record.primaryClusterId !== undefined) state.primaryClusterId = record.primaryClusterId
    return state
  }

  /**
   * Stores a verified role durably, unless it would go back: a version below the held one, the
   * held version with another role, or any role but 'disassociated' after 'disassociated' is
   * refused (RET_INVALID_INPUT, RET_POLICY_VIOLATION). The same role again with the held version
   * is a repeat and changes nothing. Callers run it inside `ctx.runExclusive`.
   */
  async set (role: SyncRole, primaryClusterId: string | undefined, version: number, signature: Uint8Array): Promise<void> {
    const held = this.current()
    if (held.role === 'disassociated' && role !== 'disassociated') {
      throw new WireError(ReturnCode.POLICY_VIOLATION, `this HSM was disassociated from the synchronisation task of cluster ${held.primaryClusterId ?? '(unknown)'}; disassociation is irreversible, so its role cannot become '${role}'`)
    }
    if (version < held.version) {
      throw new WireError(ReturnCode.INVALID_INPUT, `sync role version ${version} is older than the held version ${held.version}`)
    }
    const primary = role === 'none' ? undefined : primaryClusterId ?? held.primaryClusterId
    if (version === held.version) {
      if (role === held.role && primary === held.primaryClusterId) return
      throw new WireError(ReturnCode.INVALID_INPUT, `sync role version ${version} is held already with role '${held.role}'; a change needs a newer version`)
    }
    if (role === 'replica' && primary === undefined) {
      throw new WireError(ReturnCode.INVALID_INPUT, "the role 'replica' needs the primary cluster's id")
    }
    const record: SyncRoleRecord = { kind: 'sync-role', role, version, signature }
    if (primary !== undefined) record.primaryClusterId = primary
    await this.meta.apply([{ op: 'put', id: META_SYNC_ROLE, value: record }])
  }
}

/**
 * Throws RET_SYNC_REPLICA_READ_ONLY when this HSM is a replica (or was disassociated), naming the
 * primary cluster; `what` says what was refused ("creating a key", "deleting key 6", ...).
 */
export function refuseClientChange (ctx: HsmContext, what: string): void {
  const state = ctx.syncRole?.()
  if (state === undefined || state.role === 'none') return
  const primary = state.primaryClusterId ?? '(unknown)'
  const why = state.role === 'replica'
    ? `cluster ${ctx.identity.clusterId} is a replica of primary cluster ${primary}: make the change on the primary, the synchronisation task brings it here`
    : `cluster ${ctx.identity.clusterId} was disassociated from the synchronisation task of primary cluster ${primary}: its synchronised keys and users are kept but cannot be modified, and no keys or users can be created`
  throw new WireError(ReturnCode.SYNC_REPLICA_READ_ONLY, `${what} is refused: ${why}`)
}
