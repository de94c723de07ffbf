/**
 * The web console in a real browser, for the issue-14 tests: Debian's chromium driven by
 * playwright-core, with a fresh profile, no network beyond the lab (no component updates, sync
 * or QUIC), closed when the test ends. `shot(name)` keeps a full-page screenshot of what the page
 * shows now in the test's screenshot directory; when the test fails (or HSMLAB_KEEP_SCREENSHOTS
 * is set, to look at them), the directory and every screenshot are printed and kept; else removed.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import type { BrowserContext, Page } from 'playwright-core'
import { onTestFinished } from 'vitest'

export const CHROMIUM_PATH = '/usr/bin/chromium'

export interface ConsoleBrowser {
  browser: BrowserContext
  page: Page
  /** Where the screenshots go (kept when the test fails). */
  dir: string
  /** A full-page screenshot now, as `<dir>/<n>-<name>.png`; resolves with its path. */
  shot: (name: string) => Promise<string>
}

/** Starts chromium and opens a page (not yet on the console: `page.goto(url)`). */
export async function openBrowser (): Promise<ConsoleBrowser> {
  const dir = mkdtempSync(join(tmpdir(), 'hsmlab-console-shots-'))
  const profile = mkdtempSync(join(tmpdir(), 'hsmlab-chromium-'))
  const shots: string[] = []
  // A fresh profile each time (playwright passes it as --user-data-dir).
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 900 }
  })
  onTestFinished(async (context) => {
    await browser.close().catch(() => {})
    rmSync(profile, { recursive: true, force: true })
    if (context.task.result?.state === 'fail' || process.env.HSMLAB_KEEP_SCREENSHOTS !== undefined) {
      process.stderr.write(`--- screenshots of the console kept in ${dir} ---\n${shots.join('\n')}\n`)
    } else {
      rmSync(dir, { recursive: true, force: true })
    }
  })
  const page = browser.pages()[0] ?? await browser.newPage()
  const errors: string[] = []
  page.on('pageerror', err => { errors.push(err.message) })
  return {
    browser,
    page,
    dir,
    shot: async (name: string) => {
      const file = join(dir, `${String(shots.length + 1).padStart(2, '0')}-${name}.png`)
      await page.screenshot({ path: file, fullPage: true })
      shots.push(file)
      if (errors.length > 0) throw new Error(`the page threw: ${errors.join('; ')}`)
      return file
    }
  }
}
