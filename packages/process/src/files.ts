/**
 * The part of this package a short command of the lab needs (`hsmlab sync status`, `hsmlab
 * status`): files written atomically, the pid lock, whether a pid is alive, and the entry-point
 * test, without the logger. The package's index loads pino, which costs a command that prints one
 * status tens of milliseconds of module loading before it does anything.
 */
export { fsyncDir, writeFileAtomic } from './atomic-file.js'
export type { AtomicWriteOptions } from './atomic-file.js'
export { isEntryPoint } from './entry-point.js'
export { takePidLock } from './pid-lock.js'
export type { PidLock } from './pid-lock.js'
export { isProcessAlive } from './process-alive.js'
