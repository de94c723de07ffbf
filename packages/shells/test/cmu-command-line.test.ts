/** The shared helpers CMU (and KMU) read command lines with: splitting and name abbreviation. */
import { describe, expect, it } from 'vitest'
import { resolveAbbreviation } from '../src/abbreviation.js'
import { splitCommandLine } from '../src/command-line.js'

describe('splitCommandLine', () => {
  it('splits on spaces and tabs', () => {
    expect(splitCommandLine('  loginHSM\tCO  admin co12345 ')).toEqual({ ok: true, words: ['loginHSM', 'CO', 'admin', 'co12345'] })
    expect(splitCommandLine('')).toEqual({ ok: true, words: [] })
  })

  it('groups a quoted word and removes the quotes', () => {
    expect(splitCommandLine('createUser CU bob "pass word1"')).toEqual({ ok: true, words: ['createUser', 'CU', 'bob', 'pass word1'] })
    expect(splitCommandLine("setAttribute 6 3 'my label' x")).toEqual({ ok: true, words: ['setAttribute', '6', '3', 'my label', 'x'] })
    expect(splitCommandLine('a ""')).toEqual({ ok: true, words: ['a', ''] })
  })

  it('keeps quotes inside a word and backslashes as typed', () => {
    expect(splitCommandLine("loginHSM CU bob it's\"1234")).toEqual({ ok: true, words: ['loginHSM', 'CU', 'bob', 'it\'s"1234'] })
    expect(splitCommandLine('getCert C:\\certs\\a.pem 4')).toEqual({ ok: true, words: ['getCert', 'C:\\certs\\a.pem', '4'] })
  })

  it('refuses an unterminated quote', () => {
    const result = splitCommandLine('createUser CU bob "secret')
    expect(result.ok).toBe(false)
  })
})

describe('resolveAbbreviation', () => {
  const names = ['listUsers', 'listAttributes', 'listTokens', 'loginHSM', 'logoutHSM', 'getKeyInfo', 'getHSMInfo', 'server', 'syncKey', 'syncUser']

  it('takes a full name or a unique prefix (A.1: listU)', () => {
    expect(resolveAbbreviation('listUsers', names)).toEqual({ kind: 'match', name: 'listUsers' })
    expect(resolveAbbreviation('listU', names)).toEqual({ kind: 'match', name: 'listUsers' })
    expect(resolveAbbreviation('logi', names)).toEqual({ kind: 'match', name: 'loginHSM' })
  })

  it('ignores case unless told not to', () => {
    expect(resolveAbbreviation('LISTU', names)).toEqual({ kind: 'match', name: 'listUsers' })
    expect(resolveAbbreviation('LISTU', names, { caseSensitive: true })).toEqual({ kind: 'unknown' })
  })

  it('lists the candidates of an ambiguous prefix', () => {
    expect(resolveAbbreviation('list', names)).toEqual({ kind: 'ambiguous', candidates: ['listUsers', 'listAttributes', 'listTokens'] })
    expect(resolveAbbreviation('sync', names)).toEqual({ kind: 'ambiguous', candidates: ['syncKey', 'syncUser'] })
  })

  it('prefers an exact name over longer names it begins', () => {
    expect(resolveAbbreviation('get', ['get', 'getAll'])).toEqual({ kind: 'match', name: 'get' })
  })

  it('knows nothing of other names', () => {
    expect(resolveAbbreviation('frobnicate', names)).toEqual({ kind: 'unknown' })
    expect(resolveAbbreviation('', names)).toEqual({ kind: 'unknown' })
  })
})
