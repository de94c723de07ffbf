/**
 * Goal (issue 14, seed 003): every procedure of the seed's Cross-region Synchronization page works
 * as written, by clicking in a real browser: select the primary's region in the top navigation
 * bar; find the primary and click Manage in the Actions column; on the Replica Instance tab, Add
 * Replica Instance with a replica and a synchronization type; Update Synchronization Resources,
 * which only adds (what is selected cannot be cleared, and the page says removal is not
 * supported); View Synchronized Resources of a replica (Resource ID, Replica Instance ID,
 * Synchronization Status, Failure Cause, filtered by status); a partition applied from the page
 * turns records FAILED with their cause and heal turns them SYNCHRONIZED, without a reload; Remove
 * Replica Instance, whose dialog says the seed's words on irreversibility, and OK; then the
 * removed replica cannot be added again.
 *
 * Method: a lab of real processes (startLab) with us-east-1/primary (alice) and two clones,
 * us-west-2/dr and eu-west-1/dr2 (one HSM each, to keep it quick); keys made as alice through
 * the client library; everything else by clicking in chromium (console-browser.ts keeps a
 * screenshot of each step). A marker on `window` proves no reload happened.
 */
import { KeyType } from '@hsmlab/protocol'
import { startLab } from '@hsmlab/testing'
import { describe, expect, it } from 'vitest'
import { openBrowser } from './console-browser.js'
import { ADMIN, ALICE } from './issue-12-helpers.js'
import { clusterOf, sessionOn } from './regions-helpers.js'

const TOPOLOGY = {
  regions: [
    { name: 'us-east-1', clusters: [{ name: 'primary', hsms: 1, activate: { admin: ADMIN.password }, users: [{ type: 'CU', name: ALICE.name, password: ALICE.password }] }] },
    { name: 'us-west-2', clusters: [{ name: 'dr', hsms: 1, cloneOf: { region: 'us-east-1', cluster: 'primary' } }] },
    { name: 'eu-west-1', clusters: [{ name: 'dr2', hsms: 1, cloneOf: { region: 'us-east-1', cluster: 'primary' } }] }
  ]
}

describe('Cross-region Synchronization in the console', () => {
  it('does every procedure of seed 003 by clicking, and shows failures and their healing live', async () => {
    const lab = await startLab({ topology: TOPOLOGY })
    const primary = clusterOf(lab.status, 'us-east-1', 'primary')
    const dr = clusterOf(lab.status, 'us-west-2', 'dr')
    const dr2 = clusterOf(lab.status, 'eu-west-1', 'dr2')
    const alice = await sessionOn(primary, primary.hsms[0]?.endpoint as string, ALICE)
    const aes = async (label: string): Promise<number> => (await alice.connection.call('generateSymmetricKey', { keyType: KeyType.AES, sizeBytes: 32, label })).handle
    const first = await aes('first')
    const { console: web } = await lab.statusJson() as unknown as { console: { url: string } }
    const { page, shot } = await openBrowser()
    await page.goto(web.url)
    await page.evaluate(() => { (globalThis as unknown as { notReloaded: boolean }).notReloaded = true })

    // In the top navigation bar, the region of the primary; in the left-side navigation pane, Cross-region Synchronization.
    await page.selectOption('#region-select', 'eu-west-1')
    await page.click('[data-nav="sync"]')
    await page.getByText('No primary instance with cross-region synchronization in eu-west-1.').waitFor()
    await page.selectOption('#region-select', 'us-east-1')
    // A task of the primary with dr (the seed's pages start from one that exists).
    await page.getByRole('button', { name: 'Create synchronization task' }).click()
    await page.getByRole('dialog').locator('select').nth(1).selectOption(dr.id)
    await page.getByRole('dialog').getByRole('button', { name: 'OK' }).click()
    const row = page.locator(`[data-testid="primaries"] [data-primary="${primary.id}"]`)
    await row.waitFor()
    await shot('primaries')
    // The topology draws the task as an arrow from the primary to its replica; clicking it opens the task.
    await page.click('[data-nav="topology"]')
    await page.locator(`[data-sync="${primary.id}->${dr.id}"]`).waitFor()
    await shot('topology-sync')
    await page.goBack()

    // Find the primary instance and click Manage in the Actions column; the Replica Instance tab.
    await row.getByRole('link', { name: 'Manage' }).click()
    await page.getByRole('tab', { name: 'Replica Instance' }).click()
    const replicas = page.locator('[data-testid="replicas"]')
    await replicas.locator(`[data-replica="${dr.id}"]`, { hasText: 'KEYS_AND_USERS' }).waitFor()

    // Add Replica Instance: select a replica instance and a synchronization type.
    await page.getByRole('button', { name: 'Add Replica Instance' }).click()
    await page.selectOption('#add-replica-instance', dr2.id)
    await page.selectOption('#add-replica-type', 'KEYS')
    await shot('add-replica')
    await page.getByRole('dialog').getByRole('button', { name: 'OK' }).click()
    const dr2Row = replicas.locator(`[data-replica="${dr2.id}"]`)
    await dr2Row.locator('[data-state="ASSOCIATED"]').waitFor()
    expect(await dr2Row.textContent()).toContain('KEYS')

    // Update Synchronization Resources: add only; what is selected stays selected, and removal is not offered.
    await page.getByRole('button', { name: 'Update Synchronization Resources' }).click()
    const dialog = page.getByRole('dialog', { name: 'Update Synchronization Resources' })
    expect(await dialog.getByTestId('add-only').textContent()).toBe('You can only add resources to synchronize. Removing previously selected resources is not supported.')
    const allKeys = dialog.getByLabel('All keys')
    expect(await allKeys.isChecked()).toBe(true)
    expect(await allKeys.isDisabled()).toBe(true)
    expect(await dialog.getByRole('button', { name: /remove/i }).count()).toBe(0)
    await dialog.getByLabel('alice', { exact: true }).check()
    await shot('update-resources')
    await dialog.getByRole('button', { name: 'OK' }).click()
    await page.locator('dl.facts', { hasText: 'users alice' }).waitFor()

    // View Synchronized Resources of dr: its records, SYNCHRONIZED.
    await replicas.locator(`[data-replica="${dr.id}"]`).getByRole('link', { name: 'View Synchronized Resources' }).click()
    const resources = page.locator('[data-testid="resources"]')
    expect(await resources.locator('th').allTextContents()).toEqual(expect.arrayContaining(['Resource ID', 'Replica Instance ID', 'Synchronization Status', 'Failure Cause']))
    await resources.locator(`[data-resource="KEY:${first}:${dr.id}"][data-status="SYNCHRONIZED"]`).waitFor({ timeout: 20_000 })
    await resources.locator(`[data-resource="USER:alice:${dr.id}"][data-status="SYNCHRONIZED"]`).waitFor({ timeout: 20_000 })
    expect(await resources.locator(`[data-resource$=":${dr2.id}"]`).count()).toBe(0)
    await shot('synchronized-resources')

    // A partition from the Faults page: a new key cannot reach dr, its record FAILED with the cause; heal turns it SYNCHRONIZED.
    await page.click('[data-nav="faults"]')
    await page.selectOption('#fault-type', 'partition')
    await page.selectOption('#fault-group', 'us-west-2')
    await page.click('#fault-apply')
    await page.getByText('partition us-west-2: done').waitFor()
    const second = await aes('second')
    await page.goBack()
    await page.getByRole('tab', { name: 'Synchronized Resources' }).click()
    await page.selectOption('#resource-status', 'FAILED')
    const failed = resources.locator(`[data-resource="KEY:${second}:${dr.id}"][data-status="FAILED"]`)
    await failed.waitFor({ timeout: 30_000 })
    expect(await failed.textContent()).toContain('REPLICA_UNREACHABLE')
    expect(await resources.locator('tbody tr').evaluateAll(rows => rows.every(r => r.getAttribute('data-status') === 'FAILED'))).toBe(true)
    await shot('failed')
    await page.click('[data-nav="faults"]')
    await page.click('#fault-heal-all')
    await page.getByText('heal everything: done').waitFor()
    await page.goBack()
    await page.selectOption('#resource-status', 'SYNCHRONIZED')
    await resources.locator(`[data-resource="KEY:${second}:${dr.id}"][data-status="SYNCHRONIZED"]`).waitFor({ timeout: 30_000 })
    await shot('healed')

    // Remove Replica Instance: the dialog says it is irreversible; OK. Then dr2 cannot be added again.
    await page.getByRole('tab', { name: 'Replica Instance' }).click()
    await dr2Row.getByRole('button', { name: 'Remove Replica Instance' }).click()
    const remove = page.getByRole('dialog', { name: 'Remove Replica Instance' })
    const warning = await remove.getByTestId('irreversible').textContent()
    for (const sentence of [
      'Disassociating a replica instance is irreversible.',
      'The association between the primary instance and the replica instance cannot be re-established.',
      'You cannot create keys and secrets in the replica instance.',
      'The replica instance is removed from the synchronization task but is not released.',
      'Synchronized resources in the replica instance are retained but cannot be modified.',
      'Proceed with caution.'
    ]) expect(warning).toContain(sentence)
    await shot('remove-replica')
    await remove.getByRole('button', { name: 'OK' }).click()
    await dr2Row.locator('[data-state="DISASSOCIATED"]').waitFor()
    expect(await dr2Row.getByRole('button', { name: 'Remove Replica Instance' }).count()).toBe(0)
    await page.getByRole('button', { name: 'Add Replica Instance' }).click()
    expect(await page.locator('#add-replica-instance option').count()).toBe(0)
    await page.getByRole('dialog').getByText('a removed replica cannot be associated again').waitFor()
    await shot('cannot-add-again')
    expect(await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true)
  })
})
