// Keeps the error codes and the README in step (after fastify's test/internals/errors.test.js):
// every exported code has a section in docs/errors.md, and every section names an exported code.
import { readFileSync } from 'node:fs'
import { expect, it } from 'vitest'
import * as hsm from '../src/index.js'

it('documents every exported error code, and only those', () => {
  const readme = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
  const documented = [...readme.matchAll(/^### (HSM_ERR_\w+)$/gm)].map(m => m[1]).sort()
  const exported = Object.entries(hsm).filter(([name]) => name.startsWith('HSM_ERR_')).map(([name, value]) => {
    expect(value).toBe(name)
    return name
  }).sort()
  expect(documented).toEqual(exported)
  expect([...hsm.HSM_ERROR_CODES].sort()).toEqual(exported)
})

it('errors carry a stable code, a name and their cause', () => {
  const err = new hsm.HsmError(hsm.HSM_ERR_LISTEN, 'port taken', { cause: new Error('EADDRINUSE') })
  expect(err).toMatchObject({ name: 'HsmError', code: 'HSM_ERR_LISTEN', message: 'port taken' })
  expect(err).toBeInstanceOf(Error)
  expect(err.cause).toBeInstanceOf(Error)
})
