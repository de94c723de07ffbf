/**
 * User management on one real `hsmlab-hsm` process, over real sockets with the client library:
 * activation of a new cluster, the rules of createUser / deleteUser / changePassword with each
 * return code, lockout after five failures and its reset by a CO, and who may be deleted.
 */
import { describe, expect, it } from 'vitest'
import { waitFor } from '@hsmlab/testing'
import { activate, connect, expectCode, loginAs, startTestHsm } from './helpers.js'

describe('a new cluster', () => {
  it('has PRECO admin and AU app_user, and activates when admin changes its password', async () => {
    const hsm = await startTestHsm()
    const anon = await connect(hsm)
    const { users } = await anon.call('listUsers', {})
    expect(users.map(u => [u.userId, u.userType, u.userName, u.loginFailureCount])).toEqual([[1, 'PRECO', 'admin', 0], [2, 'AU', 'app_user', 0]])

    // The default password, but not as a CO (0xce: this user doesn't exist as a CO).
    await expectCode(anon.call('login', { userType: 'CO', userName: 'admin', password: 'password' }), 'USER_DOES_NOT_EXIST')
    await expectCode(anon.call('login', { userType: 'PRECO', userName: 'nobody', password: 'password' }), 'USER_NOT_FOUND')

    const preco = await loginAs(hsm, 'PRECO', 'admin', 'password')
    await expectCode(preco.call('login', { userType: 'PRECO', userName: 'admin', password: 'password' }), 'ALREADY_LOGGED_IN')
    // A PRECO may read, and change its own password; nothing else.
    expect((await preco.call('getHsmInfo', {})).loggedInAs).toEqual({ userName: 'admin', userType: 'PRECO' })
    await expectCode(preco.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' }), 'PERMISSION_DENIED')
    await expectCode(preco.call('deleteUser', { userType: 'CU', userName: 'app_user' }), 'PERMISSION_DENIED')
    await expectCode(preco.call('changePassword', { userType: 'AU', userName: 'app_user', password: 'whatever1' }), 'PERMISSION_DENIED')
    await expectCode(preco.call('changePassword', { userType: 'PRECO', userName: 'admin', password: 'short' }), 'INVALID_PASSWORD')

    expect(await preco.call('changePassword', { userType: 'PRECO', userName: 'admin', password: 'officer1pw' })).toEqual({ userType: 'CO' })
    expect((await preco.call('getHsmInfo', {})).loggedInAs).toEqual({ userName: 'admin', userType: 'CO' })
    // Activated: the session is a CO's now.
    expect(await preco.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' })).toEqual({ userId: 3 })
    const after = (await anon.call('listUsers', {})).users
    expect(after.map(u => [u.userId, u.userType, u.userName])).toEqual([[1, 'CO', 'admin'], [2, 'AU', 'app_user'], [3, 'CU', 'alice']])

    await preco.call('logout', {})
    await expectCode(preco.call('logout', {}), 'NOT_LOGGED_IN')
    await expectCode(preco.call('login', { userType: 'PRECO', userName: 'admin', password: 'officer1pw' }), 'USER_DOES_NOT_EXIST')
    expect(await preco.call('login', { userType: 'CO', userName: 'ADMIN', password: 'officer1pw' })).toEqual({ userId: 1, userType: 'CO' })
    // PCO and CO answer to each other.
    const pco = await loginAs(hsm, 'PCO', 'admin', 'officer1pw')
    await pco.call('logout', {})
  })
})

describe('createUser', () => {
  it('checks who asks, the type, the name, the password, duplicates, and numbers users in order', async () => {
    const hsm = await startTestHsm()
    const co = await activate(hsm)
    const anon = await connect(hsm)
    await expectCode(anon.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' }), 'NOT_LOGGED_IN')

    await expectCode(co.call('createUser', { userType: 'AU', userName: 'bob', password: 'bobpass1' }), 'INVALID_USER_TYPE')
    await expectCode(co.call('createUser', { userType: 'PRECO', userName: 'bob', password: 'bobpass1' }), 'INVALID_USER_TYPE')
    await expectCode(co.call('createUser', { userType: 'CU', userName: 'bad-name', password: 'bobpass1' }), 'INVALID_USER_NAME')
    await expectCode(co.call('createUser', { userType: 'CU', userName: 'a'.repeat(32), password: 'bobpass1' }), 'INVALID_USER_NAME')
    await expectCode(co.call('createUser', { userType: 'CU', userName: 'bob', password: 'six666' }), 'INVALID_PASSWORD')
    await expectCode(co.call('createUser', { userType: 'CU', userName: 'bob', password: 'p'.repeat(33) }), 'INVALID_PASSWORD')

    expect(await co.call('createUser', { userType: 'CU', userName: 'a'.repeat(31), password: 'p'.repeat(32) })).toEqual({ userId: 3 })
    expect(await co.call('createUser', { userType: 'PCO', userName: 'officer2', password: 'officer2pw' })).toEqual({ userId: 4 })
    expect(await co.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' })).toEqual({ userId: 5 })
    await expectCode(co.call('createUser', { userType: 'CO', userName: 'ALICE', password: 'alicepw1' }), 'USER_ALREADY_EXISTS')
    const { users } = await anon.call('listUsers', {})
    expect(users.find(u => u.userName === 'officer2')?.userType).toBe('CO')

    // A CU may not create users.
    const alice = await loginAs(hsm, 'CU', 'alice', 'alicepw1')
    await expectCode(alice.call('createUser', { userType: 'CU', userName: 'carol', password: 'carolpw1' }), 'PERMISSION_DENIED')

    // Two officers racing to create the same name: exactly one wins.
    const officer2 = await loginAs(hsm, 'CO', 'officer2', 'officer2pw')
    const race = await Promise.allSettled([
      co.call('createUser', { userType: 'CU', userName: 'dave', password: 'davepass' }),
      officer2.call('createUser', { userType: 'CU', userName: 'Dave', password: 'davepass' })
    ])
    expect(race.filter(r => r.status === 'fulfilled')).toHaveLength(1)
    expect(race.find(r => r.status === 'rejected')).toMatchObject({ reason: { code: 'RET_USER_ALREADY_EXISTS' } })
  })
})

describe('deleteUser', () => {
  it('refuses non-COs, wrong types, logged-in users, the appliance user and itself; deletes the rest', async () => {
    const hsm = await startTestHsm()
    const co = await activate(hsm)
    await co.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' })
    await co.call('createUser', { userType: 'CO', userName: 'officer2', password: 'officer2pw' })

    const alice = await loginAs(hsm, 'CU', 'alice', 'alicepw1')
    await expectCode(alice.call('deleteUser', { userType: 'CO', userName: 'officer2' }), 'PERMISSION_DENIED')
    await expectCode((await connect(hsm)).call('deleteUser', { userType: 'CU', userName: 'alice' }), 'NOT_LOGGED_IN')

    await expectCode(co.call('deleteUser', { userType: 'CU', userName: 'nobody' }), 'USER_NOT_FOUND')
    // The type given must be the user's (0xce, as the real tool answers a CO named where a CU is expected).
    await expectCode(co.call('deleteUser', { userType: 'CO', userName: 'alice' }), 'USER_DOES_NOT_EXIST')
    await expectCode(co.call('deleteUser', { userType: 'AU', userName: 'app_user' }), 'INVALID_USER_TYPE')
    await expectCode(co.call('deleteUser', { userType: 'CU', userName: 'app_user' }), 'USER_DOES_NOT_EXIST')
    // Logged in elsewhere (alice), or here (admin itself).
    await expectCode(co.call('deleteUser', { userType: 'CU', userName: 'alice' }), 'USER_LOGGED_IN')
    await expectCode(co.call('deleteUser', { userType: 'CO', userName: 'admin' }), 'USER_LOGGED_IN')

    await alice.close()
    // The HSM learns of the closed connection asynchronously.
    const deleted = await retryWhileLoggedIn(async () => await co.call('deleteUser', { userType: 'CU', userName: 'ALICE' }))
    expect(deleted).toEqual({})
    await co.call('deleteUser', { userType: 'PCO', userName: 'officer2' })
    const { users } = await co.call('listUsers', {})
    expect(users.map(u => u.userName)).toEqual(['admin', 'app_user'])
    // The freed id is given out again (ids are max + 1).
    expect(await co.call('createUser', { userType: 'CU', userName: 'bob', password: 'bobpass1' })).toEqual({ userId: 3 })
  })
})

async function retryWhileLoggedIn<T> (fn: () => Promise<T>): Promise<T> {
  let result: T | undefined
  await waitFor(async () => {
    try {
      result = await fn()
      return true
    } catch (err) {
      if ((err as { code?: string }).code === 'RET_USER_LOGGED_IN') return false
      throw err
    }
  }, { what: 'the user to be logged out' })
  return result as T
}

describe('changePassword', () => {
  it('lets anyone change their own password and only a CO change others, never of a logged-in user', async () => {
    const hsm = await startTestHsm()
    const co = await activate(hsm)
    await co.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' })
    await co.call('createUser', { userType: 'CU', userName: 'bob', password: 'bobpass1' })

    const alice = await loginAs(hsm, 'CU', 'alice', 'alicepw1')
    await expectCode(alice.call('changePassword', { userType: 'CU', userName: 'bob', password: 'stolen12' }), 'PERMISSION_DENIED')
    await expectCode(alice.call('changePassword', { userType: 'CO', userName: 'alice', password: 'alicepw2' }), 'USER_DOES_NOT_EXIST')
    await expectCode(alice.call('changePassword', { userType: 'CU', userName: 'alice', password: 'x'.repeat(33) }), 'INVALID_PASSWORD')
    expect(await alice.call('changePassword', { userType: 'CU', userName: 'alice', password: 'alicepw2' })).toEqual({ userType: 'CU' })
    await expectCode(co.call('changePassword', { userType: 'CU', userName: 'alice', password: 'alicepw3' }), 'USER_LOGGED_IN')
    await expectCode((await connect(hsm)).call('changePassword', { userType: 'CU', userName: 'bob', password: 'bobpass2' }), 'NOT_LOGGED_IN')

    expect(await co.call('changePassword', { userType: 'CU', userName: 'bob', password: 'bobpass2' })).toEqual({ userType: 'CU' })
    await expectCode(loginAs(hsm, 'CU', 'bob', 'bobpass1'), 'USER_LOGIN_FAILURE')
    await loginAs(hsm, 'CU', 'bob', 'bobpass2')
    await alice.call('logout', {})
    await loginAs(hsm, 'CU', 'alice', 'alicepw2')
  })
})

describe('lockout', () => {
  it('locks a user out after five failures until a CO resets the password', async () => {
    const hsm = await startTestHsm()
    const co = await activate(hsm)
    await co.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' })
    const conn = await connect(hsm)
    const failures = async (): Promise<number | undefined> => (await conn.call('listUsers', {})).users.find(u => u.userName === 'alice')?.loginFailureCount

    // A success resets the count.
    await expectCode(conn.call('login', { userType: 'CU', userName: 'alice', password: 'wrongpw1' }), 'USER_LOGIN_FAILURE')
    expect(await failures()).toBe(1)
    await conn.call('login', { userType: 'CU', userName: 'alice', password: 'alicepw1' })
    await conn.call('logout', {})
    expect(await failures()).toBe(0)

    for (let i = 1; i <= 5; i++) {
      await expectCode(conn.call('login', { userType: 'CU', userName: 'alice', password: `wrongpw${i}` }), 'USER_LOGIN_FAILURE')
      expect(await failures()).toBe(i)
    }
    await expectCode(conn.call('login', { userType: 'CU', userName: 'alice', password: 'alicepw1' }), 'USER_LOCKED_OUT')
    await expectCode(conn.call('login', { userType: 'CU', userName: 'alice', password: 'wrongpw6' }), 'USER_LOCKED_OUT')
    expect(await failures()).toBe(5)

    await co.call('changePassword', { userType: 'CU', userName: 'alice', password: 'alicepw9' })
    expect(await failures()).toBe(0)
    await expectCode(conn.call('login', { userType: 'CU', userName: 'alice', password: 'alicepw1' }), 'USER_LOGIN_FAILURE')
    expect(await conn.call('login', { userType: 'CU', userName: 'alice', password: 'alicepw9' })).toEqual({ userId: 3, userType: 'CU' })
  })

  it('counts concurrent wrong passwords one by one', async () => {
    const hsm = await startTestHsm()
    const co = await activate(hsm)
    await co.call('createUser', { userType: 'CU', userName: 'alice', password: 'alicepw1' })
    const conns = await Promise.all([1, 2, 3, 4].map(async () => await connect(hsm)))
    const outcomes = await Promise.allSettled(conns.map(async c => await c.call('login', { userType: 'CU', userName: 'alice', password: 'wrongpw1' })))
    expect(outcomes.every(o => o.status === 'rejected')).toBe(true)
    const { users } = await co.call('listUsers', {})
    expect(users.find(u => u.userName === 'alice')?.loginFailureCount).toBe(4)
  })
})
