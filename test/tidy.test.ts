/**
 * Repository rules a linter cannot express (TigerBeetle's tidy.zig): focused tests hide the rest of
 * the suite; fixed sleeps make tests slow and flaky; libraries must not print; error codes must be
 * documented. Runs over the files git tracks or would track.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

const root = new URL('..', import.meta.url).pathname
const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' })
  .split('\n').filter(f => f.endsWith('.ts') && !f.includes('node_modules/'))
const read = (f: string): string => readFileSync(`${root}/${f}`, 'utf8')

describe('tidy', () => {
  it('has no focused tests', () => {
    const focused = files.filter(f => /\b(it|test|describe)\.only\(/.test(read(f)) && f !== 'test/tidy.test.ts')
    expect(focused).toEqual([])
  })

  it('has no fixed sleeps in tests', () => {
    const sleepy = files.filter(f => f.includes('test/') && f !== 'test/tidy.test.ts' &&
      /setTimeout\(\s*r(esolve)?\s*,\s*\d{3,}\s*\)|\bsleep\(\s*\d{3,}\s*\)/.test(read(f)))
    expect(sleepy).toEqual([])
  })

  it('libraries do not print with console.*', () => {
    const noisy = files.filter(f => /^packages\/[^/]+\/src\//.test(f) && !f.includes('/src/bin/') &&
      /\bconsole\.(log|error|warn|info)\(/.test(read(f)))
    expect(noisy).toEqual([])
  })

  it('documents every exported error code in docs/errors.md', () => {
    const page = read('docs/errors.md')
    const codes = new Set<string>()
    for (const f of files.filter(f => /^packages\/[^/]+\/src\/errors\.ts$/.test(f))) {
      for (const m of read(f).matchAll(/export const ([A-Z]+_ERR_[A-Z_0-9]+)\b/g)) codes.add(m[1] ?? '')
    }
    const missing = [...codes].filter(code => !page.includes(`### ${code}`))
    expect(missing, 'codes exported but not documented').toEqual([])
    const documented = [...page.matchAll(/^### ([A-Z]+_ERR_[A-Z_0-9]+)$/gm)].map(m => m[1])
    expect(documented.filter(code => !codes.has(code ?? '')), 'codes documented but gone').toEqual([])
  })
})
