/**
 * @packageDocumentation
 * Private test helpers: every resource a helper makes is released when the test ends, also when
 * it fails; waits are on conditions with deadlines, never fixed sleeps.
 *
 * @example
 * ```ts
 * const dir = tmpDir()
 * const hsm = spawnNode(hsmBin, ['--data-dir', dir, '--port', '0'])
 * await waitFor(() => hsm.stdout().includes('"ready"'), { what: 'HSM ready line' })
 * ```
 */
export { waitFor } from './wait-for.js'
export type { WaitForOptions } from './wait-for.js'
export { tmpDir } from './tmp-dir.js'
export { isRunning } from './process-state.js'
export { spawnNode, spawnProcess } from './spawn.js'
export type { SpawnOptions, SpawnedProcess } from './spawn.js'
export { HSMLAB_BIN, runHsmlab, startLab } from './lab.js'
export type { HsmlabRun, LabStatusCluster, LabStatusHsm, LabStatusJson, RunHsmlabOptions, StartLabOptions, StartedLab } from './lab.js'
