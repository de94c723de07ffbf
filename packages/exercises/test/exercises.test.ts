/**
 * Every exercise folder that ships is complete and valid (exercise.json, task, hints, solution,
 * mistakes, checks), as `start` would find it; the error codes are documented; values drawn from
 * a seed are the same for the same seed; the command line's contract where it needs no lab.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  EXERCISES_DIR, EXERCISE_ERROR_CODES, checkSetupStep, drawValue, exerciseNames, loadChecks, main, readExercise, sectionsOf, substitute, typedBlocks, typedSections
} from '../src/index.js'

/** The exercises of issue 13. */
const ISSUE_13 = ['activate-cluster', 'desync-user', 'sync-key-to-clone', 'dr-copy-and-clone', 'rotate-credentials-across-clones',
  'locked-out-user', 'share-key', 'partition-left-keys-behind', 'failed-sync-resource', 'replace-failed-hsm']

async function run (argv: string[], cwd?: string): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await main(argv, { stdout: t => { out += t }, stderr: t => { err += t }, ...(cwd === undefined ? {} : { cwd }) })
  return { code, out, err }
}

describe('the exercises that ship', () => {
  it('has the exercises of issue 13', () => {
    expect(exerciseNames()).toEqual(expect.arrayContaining(ISSUE_13))
  })

  for (const name of exerciseNames()) {
    it(`${name}: its folder is complete and valid`, async () => {
      const d = await readExercise(join(EXERCISES_DIR, name))
      expect(d.title.length).toBeGreaterThan(0)
      expect(d.summary.length).toBeGreaterThan(0)
      const checks = await loadChecks(d)
      expect(Object.keys(checks).sort()).toEqual(d.steps.map(s => s.id).sort())
      // Every step has a task section and at least one hint; the solution has something to type.
      expect(sectionsOf(d.task).sections).toHaveLength(d.steps.length)
      const solution = typedSections(d.solution)
      expect(solution.flatMap(s => s.blocks).length).toBeGreaterThan(0)
      for (const m of typedSections(d.mistakes)) expect(m.expect.length).toBeGreaterThan(0)
    })
  }
})

describe('exercise folders', () => {
  it('names the file and the problem of a broken folder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hsmlab-exercise-'))
    try {
      await expect(readExercise(dir)).rejects.toMatchObject({ code: 'EXERCISE_ERR_INVALID', message: expect.stringContaining('exercise.json: is missing') })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a schedule entry without its time or with a fault on a group the lab will not have', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hsmlab-exercise-'))
    try {
      const folder = join(dir, 'scheduled')
      cpSync(join(EXERCISES_DIR, 'remove-departed-user'), folder, { recursive: true })
      const json = JSON.parse(readFileSync(join(folder, 'exercise.json'), 'utf8')) as Record<string, unknown>
      const withSchedule = async (schedule: unknown): Promise<unknown> => {
        writeFileSync(join(folder, 'exercise.json'), JSON.stringify({ ...json, schedule }))
        return await readExercise(folder).then(() => undefined, (err: unknown) => err)
      }
      expect(await withSchedule([{ atSeconds: 5, heal: {} }, { atSeconds: 1, fault: { type: 'partition', group: 'us-east-1/training/hsm-1' } }])).toBeUndefined()
      expect(await withSchedule([{ fault: { type: 'partition', group: 'us-east-1' } }])).toMatchObject({ code: 'EXERCISE_ERR_INVALID', message: expect.stringContaining('schedule[0]: "atSeconds" must be') })
      expect(await withSchedule([{ atSeconds: 1, fault: { type: 'partition', group: 'us-west-2' } }])).toMatchObject({ code: 'EXERCISE_ERR_INVALID', message: expect.stringContaining('us-west-2') })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a setup step it does not know, and one without its fields', () => {
    expect(checkSetupStep({ explode: {} })).toMatch(/unknown action "explode"/)
    expect(checkSetupStep({ createKeys: { cluster: 'us-east-1/primary' } })).toMatch(/does not have the fields/)
    expect(checkSetupStep({ deleteHsm: { cluster: 'us-east-1/training', server: 2 } })).toBeUndefined()
  })

  it('reads the typed blocks of a solution: sh, cmu ARGS, kmu ARGS; other blocks are left out', () => {
    const blocks = typedBlocks('text\n```sh\na=1\n```\n```json\n{}\n```\n```cmu .hsmlab/x.cfg\nloginHSM CO admin Admin1234\nquit\n```\n```kmu --config c\nexit\n```\n')
    expect(blocks).toEqual([
      { kind: 'sh', lines: ['a=1'] },
      { kind: 'cmu', args: '.hsmlab/x.cfg', lines: ['loginHSM CO admin Admin1234', 'quit'] },
      { kind: 'kmu', args: '--config c', lines: ['exit'] }
    ])
  })

  it('fills in values: {{name}}, {{name[N]}}, and a line per element for {{name[]}}', () => {
    const values = { key: 7, left: [3, 5] }
    expect(substitute('syncKey {{key}} 1\nsyncKey {{left[]}} 1\nfirst {{left[0]}}, all {{left}}, unknown {{nope}}', values))
      .toBe('syncKey 7 1\nsyncKey 3 1\nsyncKey 5 1\nfirst 3, all 3, 5, unknown {{nope}}')
  })
})

describe('values drawn from a seed', () => {
  it('are the same for the same seed, and are what each recipe asks for', () => {
    fc.assert(fc.property(fc.nat(), fc.string({ minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 5 }), (seed, name, count) => {
      const password = drawValue(seed, name, { password: true })
      expect(drawValue(seed, name, { password: true })).toBe(password)
      expect(typeof password === 'string' && password.length >= 7 && password.length <= 32).toBe(true)
      const list = ['a', 'b', 'c', 'd', 'e']
      const sample = drawValue(seed, name, { sample: list, count }) as string[]
      expect(new Set(sample).size).toBe(count)
      expect(sample).toEqual(list.filter(x => sample.includes(x)))
      const n = drawValue(seed, name, { int: [2, 4] }) as number
      expect(n >= 2 && n <= 4).toBe(true)
    }), { numRuns: 200, interruptAfterTimeLimit: 3000 })
  })
})

describe('hsmlab exercise (no lab needed)', () => {
  it('lists the exercises, as text and as JSON', async () => {
    const json = await run(['list', '--json'])
    expect(json.code).toBe(0)
    const list = JSON.parse(json.out) as Array<{ name: string, title: string, minutes: number, level: string, summary: string }>
    expect(list.map(e => e.name)).toEqual(expect.arrayContaining(ISSUE_13))
    for (const e of list) expect(Object.keys(e).sort()).toEqual(['level', 'minutes', 'name', 'summary', 'title'])
    expect((await run(['list'])).out).toMatch(/^desync-user\s+10 min\s+beginner\s+A user whose password one HSM missed$/m)
  })

  it('exits 2 on a bad command line, 1 when DIR holds no exercise or the exercise is unknown', async () => {
    expect((await run([])).code).toBe(2)
    expect((await run(['frobnicate'])).code).toBe(2)
    expect((await run(['start'])).code).toBe(2)
    expect((await run(['check', '--seed', '3'])).code).toBe(2)
    const cwd = mkdtempSync(join(tmpdir(), 'hsmlab-exercise-'))
    try {
      const check = await run(['check'], cwd)
      expect(check).toMatchObject({ code: 1, err: expect.stringContaining('[EXERCISE_ERR_NOT_STARTED] there is no exercise in') })
      const start = await run(['start', 'no-such-exercise'], cwd)
      expect(start).toMatchObject({ code: 1, err: expect.stringContaining('[EXERCISE_ERR_UNKNOWN]') })
    } finally {
      rmSync(cwd, { recursive: true, force: true })
    }
  })
})

it('documents every EXERCISE_ERR_* code in docs/errors.md, and no other', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
  const documented = [...doc.matchAll(/^### (EXERCISE_ERR_[A-Z_]+)$/gm)].map(m => m[1])
  expect([...documented].sort()).toEqual([...EXERCISE_ERROR_CODES].sort())
})
