/**
 * Quorum tokens belong to a session (issue 15: "only valid as long as your current login session
 * is open"), so one real `hsmlab-hsm` process forgets a session's tokens when its connection
 * closes, instead of holding them in its table until they expire.
 */
import { describe, expect, it } from 'vitest'
import { waitFor } from '@hsmlab/testing'
import { hsmDefaults } from '../src/index.js'
import { activate, expectCode, loginAs, startTestHsm } from './helpers.js'

describe('quorum tokens', () => {
  it('go with the connection of their session', async () => {
    const hsm = await startTestHsm()
    const first = await activate(hsm)
    // Fill the HSM's table (a few calls at a time, under the client's pending bound).
    const batch = 128
    for (let issued = 0; issued < hsmDefaults.quorumTokensMax; issued += batch) {
      await Promise.all(Array.from({ length: batch }, async () => await first.call('getQuorumToken', { service: 3, userName: 'admin' })))
    }
    expect((await first.call('listQuorumTokens', {})).tokens).toHaveLength(hsmDefaults.quorumTokensMax)
    await expectCode(first.call('getQuorumToken', { service: 3, userName: 'admin' }), 'QUORUM_TOKENS_FULL')
    await first.close()

    // A new session of the same user: none of the closed session's tokens, and room for its own
    // (the server sees the close a moment after the client, hence the wait).
    const second = await loginAs(hsm, 'CO', 'admin', 'officer1pw')
    expect((await second.call('listQuorumTokens', {})).tokens).toEqual([])
    const { token } = await waitFor(async () => await second.call('getQuorumToken', { service: 3, userName: 'admin' }),
      { what: 'a quorum token once the closed session\'s tokens are gone', timeoutMs: 5_000 })
    expect(token.userName).toBe('admin')
    expect((await second.call('listQuorumTokens', {})).tokens.map(t => t.id)).toEqual([token.id])
  })

  it('go with the login that asked for them', async () => {
    const hsm = await startTestHsm()
    const conn = await activate(hsm)
    await conn.call('getQuorumToken', { service: 3, userName: 'admin' })
    expect((await conn.call('listQuorumTokens', {})).tokens).toHaveLength(1)
    // Whoever logs in next on the same connection starts without them.
    await conn.call('logout', {})
    await conn.call('login', { userType: 'CO', userName: 'admin', password: 'officer1pw' })
    expect((await conn.call('listQuorumTokens', {})).tokens).toEqual([])
  })
})
