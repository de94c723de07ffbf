/**
 * Keeps the lab's error codes and docs/errors.md in step (STYLE point 8): a code that is exported
 * but undocumented, or documented but gone, fails here.
 */
import { readFileSync } from 'node:fs'
import { expect, it } from 'vitest'
import { LAB_ERROR_CODES } from '../src/index.js'

it('documents every LAB_ERR_* code in docs/errors.md, and no other', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
  const documented = [...doc.matchAll(/^### (LAB_ERR_[A-Z_]+)$/gm)].map(m => m[1])
  expect([...documented].sort()).toEqual([...LAB_ERROR_CODES].sort())
})
