/**
 * Goal (issue 14): a learner needs nothing but the browser. The Exercises page shows the running
 * exercise's task and steps; Check shows what is still wrong with its reasons; Hint gives the
 * next hint; the solution typed into the page's terminal (bash on the lab's machine, the lab's
 * shells on its PATH) solves it, and Check then says every step passes.
 *
 * Method: `hsmlab exercise start locked-out-user` with a fixed seed (its `up` starts the
 * console), the exercise's own solution (`hsmlab exercise solution`) typed key by key into the
 * xterm.js terminal of the page in chromium, the CMU session waited for by its prompts on the
 * terminal's screen (console-browser.ts keeps a screenshot of each step).
 */
import { runHsmlab } from '@hsmlab/testing'
import { describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { openBrowser } from './console-browser.js'
import { scenarioDir } from './scenario-helpers.js'

/** What the page's terminal shows (its whole buffer, scrollback included). */
async function screen (page: Page): Promise<string> {
  return await page.evaluate(() => {
    const term = (globalThis as unknown as { hsmlabTerminal: { buffer: { active: { length: number, getLine: (i: number) => { translateToString: (trim: boolean) => string } | undefined } } } }).hsmlabTerminal
    const lines: string[] = []
    for (let i = 0; i < term.buffer.active.length; i++) lines.push(term.buffer.active.getLine(i)?.translateToString(true) ?? '')
    return lines.join('\n')
  })
}

function count (text: string, what: string): number {
  return text.split(what).length - 1
}

describe('an exercise in the console', () => {
  it('is solved by typing its solution into the page\'s terminal and clicking Check', async () => {
    // The lab where a learner has it (`.hsmlab` in the working directory): the solution names its files there.
    const { cwd, dir } = scenarioDir('.hsmlab')
    const start = await runHsmlab(['exercise', 'start', 'locked-out-user', '--seed', '7', '--dir', dir], { cwd, timeoutMs: 90_000 })
    expect(start.code, start.stderr).toBe(0)
    const solution = await runHsmlab(['exercise', 'solution', '--dir', dir], { cwd, timeoutMs: 30_000 })
    expect(solution.code, solution.stderr).toBe(0)
    const status = await runHsmlab(['status', '--dir', dir, '--json'], { cwd, timeoutMs: 30_000 })
    const { console: web } = JSON.parse(status.stdout) as { console: { url: string } }

    const { page, shot } = await openBrowser()
    await page.goto(web.url)
    await page.click('[data-nav="exercises"]')
    const panel = page.getByTestId('exercise')
    await panel.getByRole('heading', { name: 'Unlock a locked-out crypto user' }).waitFor()
    const step = panel.locator('[data-step]').first()
    await page.click('#exercise-check')
    await step.locator('.reasons li').first().waitFor({ timeout: 30_000 })
    expect(await step.getAttribute('data-passed')).toBe('false')
    await page.click('#exercise-hint')
    await page.getByTestId('hints').locator('li', { hasText: 'Hint 1 of' }).waitFor({ timeout: 30_000 })
    await shot('exercise-failing')

    // The solution, as `hsmlab exercise solution` prints it: `$ command` then its session's lines, indented.
    const lines = solution.stdout.split('\n')
    const command = (lines.find(l => l.startsWith('$ ')) ?? '').slice(2)
    const session = lines.filter(l => l.startsWith('  ')).map(l => l.trim())
    expect(command).toMatch(/^cloudhsm_mgmt_util \S+\.cfg$/)
    expect(session).toContain('quit')
    await page.locator('[data-testid="terminal-state"]', { hasText: 'open' }).waitFor({ timeout: 10_000 })
    await page.locator('[data-testid="terminal"] textarea').focus()
    await page.keyboard.type(`${command}\n`)
    // One line at a time, each once CMU asks for it (its prompt, or the question changePswd asks).
    let prompts = 0
    for (const line of session) {
      const asks = line === 'y' ? 'Do you want to continue(y/n)?' : 'aws-cloudhsm>'
      if (asks === 'aws-cloudhsm>') prompts++
      try {
        await expect.poll(async () => count(await screen(page), asks), { timeout: 20_000 }).toBeGreaterThanOrEqual(asks === 'aws-cloudhsm>' ? prompts : 1)
      } catch (err) {
        await shot('terminal-stuck')
        throw new Error(`the terminal did not ask for '${line}' (${asks}); it shows:\n${await screen(page)}`, { cause: err })
      }
      await page.keyboard.type(`${line}\n`)
    }
    await expect.poll(async () => await screen(page), { timeout: 20_000 }).toMatch(/disconnecting from servers, please wait\.\.\.|\$ $|# $/m)
    await shot('terminal-solved')

    await page.click('#exercise-check')
    await page.locator('[data-testid="check-result"].ok').waitFor({ timeout: 30_000 })
    expect(await step.getAttribute('data-passed')).toBe('true')
    await shot('exercise-done')
  })
})
