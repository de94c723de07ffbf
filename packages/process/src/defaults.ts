/** Defaults of this package's options, in one place so that docs and code agree. */
export const processDefaults = {
  /**
   * Most bytes of log lines a process keeps while its log cannot be written (a full disk); they
   * are written with the next line that can be, and lines past this are dropped.
   * @default 1048576 (1 MiB)
   */
  logBufferedBytesMax: 1024 * 1024
} as const
