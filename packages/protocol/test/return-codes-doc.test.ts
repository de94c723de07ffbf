import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ReturnCode, formatReturnCode } from '@hsmlab/protocol'

// docs/return-codes.md is what users read when a tool prints a code; it must list exactly the
// codes the protocol has, with the same numbers and texts.
describe('docs/return-codes.md', () => {
  const page = readFileSync(new URL('../../../docs/return-codes.md', import.meta.url), 'utf8')
  const rows = [...page.matchAll(/^\| `(0x[0-9a-f]+)` \| `([A-Z_0-9]+)` \| (.*) \| (yes|no) \|$/gm)]

  it('lists every return code with its number and text', () => {
    for (const info of Object.values(ReturnCode)) {
      const row = rows.find(r => r[2] === info.name)
      expect(row, `${info.name} is missing from docs/return-codes.md`).toBeDefined()
      expect(row?.[1]).toBe(formatReturnCode(info.code))
      expect(row?.[3]?.replace(/\\\|/g, '|')).toBe(info.message)
    }
  })

  it('lists nothing the protocol does not have', () => {
    const names = new Set(Object.values(ReturnCode).map(info => info.name))
    for (const row of rows) expect(names.has(row[2] ?? ''), `${row[2]} is documented but not in the protocol`).toBe(true)
  })
})
