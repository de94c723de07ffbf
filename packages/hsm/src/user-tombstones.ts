/**
 * User deletion tombstones (issue 12): the names of users deleteUser deleted on this HSM, kept
 * durably in the sealed meta store (`DeletedUserRecord`).
 *
 * Users are not replicated inside a cluster (CMU sends createUser and deleteUser to every HSM),
 * so an HSM that was away while a user was made simply lacks it. A synchronisation task watches
 * one HSM of the primary; without tombstones it could not tell "deleted" from "never received",
 * and would delete on the replica a user the primary still has. syncChanges lists the tombstones
 * (`deletedUsers` of a full answer) and the control plane carries a user deletion only for them.
 *
 * A tombstone is written before the user is removed (a crash between leaves both: a user present
 * on the HSM wins, so nothing is wrongly deleted) and dropped when a user of that name is made
 * here again. Only client deletions make one: syncApply's deletions on a replica need none.
 */
import type { Store } from '@hsmlab/store'
import type { UserRecord } from './context.js'
import { META_DELETED_USER_PREFIX } from './data-dir.js'
import type { MetaRecord } from './data-dir.js'

const idOf = (userName: string): string => `${META_DELETED_USER_PREFIX}${userName.toLowerCase()}`

/** The user deletion tombstones of one HSM. */
export class UserTombstones {
  private readonly meta: Store<MetaRecord>
  private readonly now: () => number

  constructor (meta: Store<MetaRecord>, now: () => number = Date.now) {
    this.meta = meta
    this.now = now
  }

  /** Records durably that deleteUser is deleting `user` here (call before removing it). */
  async deleting (user: Pick<UserRecord, 'userName' | 'userType'>): Promise<void> {
    await this.meta.apply([{ op: 'put', id: idOf(user.userName), value: { kind: 'deleted-user', userName: user.userName, userType: user.userType, deletedAtMs: this.now() } }])
  }

  /** A user of this name was made here again: its old deletion no longer speaks for it. */
  async created (userName: string): Promise<void> {
    if (this.meta.has(idOf(userName))) await this.meta.apply([{ op: 'delete', id: idOf(userName) }])
  }

  /** The names of the users deleted here, as they were spelt. */
  names (): string[] {
    const names: string[] = []
    for (const [id, record] of this.meta.entries()) {
      if (id.startsWith(META_DELETED_USER_PREFIX) && record.kind === 'deleted-user') names.push(record.userName)
    }
    return names
  }
}
