/** Defaults of every option of `openStore`, in one place so that docs and code agree. */
export const storeDefaults = {
  /**
   * Compact the write-ahead log into a snapshot after this many records. A record holds one
   * group commit, so with many concurrent writers it holds many changes.
   * @default 4096
   */
  snapshotAfterRecords: 4096,
  /**
   * Make each write durable (O_DSYNC) before acknowledging it. Without it, changes survive the
   * death of the process but not of the machine.
   * @default true
   */
  syncWrites: true,
  /**
   * Create the store when none of its files exist; with `false`, a store whose files are all
   * gone is refused (`STORE_ERR_TAMPERED`) instead of starting empty.
   * @default true
   */
  create: true,
  /**
   * Most bytes of changes allowed to wait for the disk or be in the write under way (their
   * msgpack encoding, plus 64 per `apply`); past it `apply` rejects with `STORE_ERR_BUSY`. It
   * also caps one `apply`, and so the size of one record.
   * @default 67108864 (64 MiB)
   */
  queuedBytesMax: 64 * 1024 * 1024
} as const
