/**
 * Test helpers that read a WAL file's layout (u32 length, u32 ~length, sealed bytes) so that
 * tests can damage exactly one record, its prefix, or the tail.
 */
import { readFileSync } from 'node:fs'

/** Where one record sits in a WAL file. */
export interface Frame {
  /** Byte offset of the length prefix. */
  start: number
  /** Byte offset of the sealed bytes. */
  body: number
  /** Byte offset just past the record. */
  end: number
}

/** The records of a well-formed WAL file. */
export function walFrames (path: string): Frame[] {
  const bytes = readFileSync(path)
  const frames: Frame[] = []
  let at = 0
  while (at < bytes.length) {
    const length = bytes.readUInt32LE(at)
    frames.push({ start: at, body: at + 8, end: at + 8 + length })
    at += 8 + length
  }
  if (at !== bytes.length) throw new Error(`${path} does not end on a record boundary`)
  return frames
}
