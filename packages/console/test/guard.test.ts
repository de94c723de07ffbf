/**
 * The console's guard (guard.ts) without a server: which Host, Origin and credentials pass, for
 * the checks the e2e test (test/e2e/issue-14-console-security.test.ts) makes over real sockets,
 * and a property: no Host other than the two allowed ones, in any case or with any suffix, passes.
 */
import type { IncomingMessage } from 'node:http'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Guard } from '../src/index.js'

const TOKEN = 'abcdefghijklmnopqrstuvwxyz012345'
const guard = new Guard(TOKEN, 4242)

function check (headers: Record<string, string>, path = '/'): ReturnType<Guard['check']> {
  return guard.check({ headers } as unknown as IncomingMessage, new URL(path, 'http://127.0.0.1'))
}

describe('Guard', () => {
  it('lets the token in by query, cookie or bearer, for 127.0.0.1 and localhost at its port', () => {
    expect(check({ host: '127.0.0.1:4242' }, `/?token=${TOKEN}`)).toEqual({ ok: true, viaQuery: true })
    expect(check({ host: 'localhost:4242', cookie: `a=b; hsmlab-console-4242=${TOKEN}` })).toEqual({ ok: true, viaQuery: false })
    expect(check({ host: '127.0.0.1:4242', authorization: `Bearer ${TOKEN}`, origin: 'http://127.0.0.1:4242' })).toEqual({ ok: true, viaQuery: false })
    expect(guard.cookie()).toBe(`hsmlab-console-4242=${TOKEN}; HttpOnly; SameSite=Strict; Path=/`)
  })

  it('answers 401 without the right token, 403 to another Host or Origin first', () => {
    expect(check({ host: '127.0.0.1:4242' })).toMatchObject({ ok: false, status: 401 })
    expect(check({ host: '127.0.0.1:4242', cookie: `hsmlab-console-4243=${TOKEN}` })).toMatchObject({ ok: false, status: 401 })
    expect(check({ host: '127.0.0.1:4242' }, `/?token=${TOKEN.slice(1)}`)).toMatchObject({ ok: false, status: 401 })
    expect(check({ host: 'evil.example:4242' }, `/?token=${TOKEN}`)).toMatchObject({ ok: false, status: 403 })
    expect(check({}, `/?token=${TOKEN}`)).toMatchObject({ ok: false, status: 403 })
    expect(check({ host: '127.0.0.1:4242', origin: 'http://evil.example' }, `/?token=${TOKEN}`)).toMatchObject({ ok: false, status: 403 })
    expect(check({ host: '127.0.0.1:4242', origin: 'null' }, `/?token=${TOKEN}`)).toMatchObject({ ok: false, status: 403 })
  })

  it('refuses every other Host, whatever the token', () => {
    fc.assert(fc.property(fc.string({ maxLength: 40 }), host => {
      const verdict = check({ host }, `/?token=${TOKEN}`)
      const allowed = ['127.0.0.1:4242', 'localhost:4242'].includes(host.toLowerCase())
      return allowed ? verdict.ok : !verdict.ok && verdict.status === 403
    }), { numRuns: 2000 })
  })
})
