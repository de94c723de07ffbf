/**
 * Repository rules a linter cannot express (TigerBeetle's tidy.zig): focused tests hide the rest of
 * the suite; fixed sleeps make tests slow and flaky; libraries must not print; error codes must be
 * documented; no two files import each other, however indirectly. Runs over the files git tracks
 * or would track.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const root = new URL('..', import.meta.url).pathname
const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' })
  .split('\n').filter(f => f.endsWith('.ts') && !f.includes('node_modules/'))
const read = (f: string): string => readFileSync(`${root}/${f}`, 'utf8')

/**
 * The files `file` imports or re-exports from (type-only imports included: they tie the files
 * together all the same), as repository paths; `@hsmlab/<name>` is that package's src/index.ts.
 * Modules outside the repository are left out.
 */
function importsOf (file: string, known: ReadonlySet<string>): string[] {
  const source = ts.createSourceFile(file, read(file), ts.ScriptTarget.Latest)
  const targets: string[] = []
  for (const statement of source.statements) {
    const specifier = ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement) ? statement.moduleSpecifier : undefined
    if (specifier === undefined || !ts.isStringLiteral(specifier)) continue
    const name = specifier.text
    const pkg = /^@hsmlab\/([^/]+)$/.exec(name)?.[1]
    const base = name.startsWith('.') ? normalize(join(dirname(file), name)) : pkg === undefined ? undefined : `packages/${pkg}/src/index.js`
    if (base === undefined) continue
    const target = [base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')].find(f => known.has(f))
    if (target !== undefined) targets.push(target)
  }
  return targets
}

/** The groups of files of `graph` that import one another in a cycle (strongly connected components, after Tarjan). */
function cyclesOf (graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const cycles: string[][] = []
  const visit = (v: string): void => {
    index.set(v, next); low.set(v, next); next++
    stack.push(v)
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0)) } else if (stack.includes(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0))
    }
    if (low.get(v) !== index.get(v)) return
    const component = stack.splice(stack.indexOf(v))
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(component.sort())
  }
  for (const v of graph.keys()) if (!index.has(v)) visit(v)
  return cycles
}

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

  it('has no import cycles between files', () => {
    // tsc -b already refuses a cycle between packages; this catches one between two files, which
    // makes module initialisation order matter and the files impossible to understand one at a time.
    const sources = files.filter(f => !f.endsWith('.d.ts'))
    const known = new Set(sources)
    const graph = new Map(sources.map(f => [f, importsOf(f, known)]))
    expect(cyclesOf(graph)).toEqual([])
  })
})
