import { readFileSync } from 'node:fs'

/** True when the process runs: it exists and is not a zombie (exited, not yet collected by its parent). */
export function isRunning (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
  }
}
