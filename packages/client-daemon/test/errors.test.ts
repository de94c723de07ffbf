/**
 * Keeps the client daemon's error codes and docs/errors.md in step (STYLE point 8), and its
 * return-value table with docs/pkcs11.md: every HSM return code the table maps is in the page's
 * table, with the CK_RV the daemon answers.
 */
import { readFileSync } from 'node:fs'
import { expect, it } from 'vitest'
import { describeReturnCode } from '@hsmlab/protocol'
import { CLIENT_DAEMON_ERROR_CODES, Ckr, RETURN_VALUE_TABLE } from '../src/index.js'

it('documents every CLIENT_DAEMON_ERR_* code in docs/errors.md, and no other', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
  const documented = [...doc.matchAll(/^### (CLIENT_DAEMON_ERR_[A-Z_]+)$/gm)].map(m => m[1])
  expect([...documented].sort()).toEqual([...CLIENT_DAEMON_ERROR_CODES].sort())
})

it('documents the return-value table in docs/pkcs11.md', () => {
  const doc = readFileSync(new URL('../../../docs/pkcs11.md', import.meta.url), 'utf8')
  const names = new Map<number, string>(Object.entries(Ckr).map(([name, value]): [number, string] => [value, `CKR_${name}`]))
  for (const [code, row] of RETURN_VALUE_TABLE) {
    const line = doc.split('\n').find(l => l.startsWith(`| \`${describeReturnCode(code).name}\``))
    expect(line, describeReturnCode(code).name).toBeDefined()
    expect(line).toContain(names.get(row.default))
  }
})
