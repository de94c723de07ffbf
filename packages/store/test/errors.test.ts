// Keeps the error codes and docs/errors.md in step (after fastify's test/internals/errors.test.js):
// every exported code has a section in docs/errors.md, and every section names an exported code.
import { readFileSync } from 'node:fs'
import { expect, it } from 'vitest'
import * as store from '../src/index.js'

it('documents every exported error code, and only those', () => {
  const readme = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
  const documented = [...readme.matchAll(/^### (STORE_ERR_\w+)$/gm)].map(m => m[1]).sort()
  const exported = Object.entries(store).filter(([name]) => name.startsWith('STORE_ERR_')).map(([name, value]) => {
    expect(value).toBe(name)
    return name
  }).sort()
  expect(documented).toEqual(exported)
})

it('exports exactly the public API', () => {
  expect(Object.keys(store).sort()).toEqual([
    'STORE_ERR_BUSY', 'STORE_ERR_CLOSED', 'STORE_ERR_FORMAT', 'STORE_ERR_INVALID_ARGUMENT', 'STORE_ERR_IO', 'STORE_ERR_NO_SPACE', 'STORE_ERR_TAMPERED',
    'StoreError', 'memoryStore', 'openStore'
  ])
  const err = new store.StoreError(store.STORE_ERR_IO, 'disk on fire', { cause: new Error('EIO') })
  expect(err).toMatchObject({ name: 'StoreError', code: 'STORE_ERR_IO', message: 'disk on fire' })
  expect(err).toBeInstanceOf(Error)
  expect(err.cause).toBeInstanceOf(Error)
})
