/**
 * The checker for crash.test.ts, kept apart from the code under test (after TigerBeetle's
 * state_checker): given what a store holds after a crash and what the killed writer had
 * acknowledged, lists every broken promise. Nothing acknowledged may be missing and no batch
 * may be half there.
 */

/** One acknowledged batch, from an `ack <batch> <size> <writer>` line. */
export interface Ack {
  batch: string
  size: number
  writer: number
  /** The run (child process) that wrote it. */
  run: string
}

/** The complete `ack` lines in a child's stdout (a last line cut by the kill is ignored). */
export function parseAcks (stdout: string): Ack[] {
  const lines = stdout.split('\n').slice(0, -1)
  const acks: Ack[] = []
  for (const line of lines) {
    const [word, batch, size, writer] = line.split(' ')
    if (word !== 'ack' || batch === undefined) continue
    acks.push({ batch, size: Number(size), writer: Number(writer), run: batch.split(':')[0]! })
  }
  return acks
}

interface BatchValue { batch: string, size: number, i: number }

/** Every violation found; empty when the store kept its promises. */
export function checkCrashedStore (entries: Iterable<[string, unknown]>, acks: Ack[]): string[] {
  const problems: string[] = []
  const present = new Map<string, Set<number>>() // batch -> indexes present
  const sizes = new Map<string, number>()
  const pointers = new Map<string, string>() // `<run>:w<writer>` -> batch
  for (const [id, value] of entries) {
    if (/^\d+:w\d+$/.test(id)) { pointers.set(id, (value as { batch: string }).batch); continue }
    const v = value as BatchValue
    if (id !== `${v.batch}:${v.i}`) problems.push(`id ${id} holds the value of ${v.batch}:${v.i}`)
    let set = present.get(v.batch)
    if (set === undefined) present.set(v.batch, set = new Set())
    set.add(v.i)
    sizes.set(v.batch, v.size)
  }
  // All or nothing: a batch that is there at all is there whole.
  for (const [batch, set] of present) {
    const size = sizes.get(batch)!
    if (set.size !== size) problems.push(`batch ${batch} is half there: ${set.size} of ${size} ids`)
  }
  // Durability: every acknowledged batch is there.
  for (const ack of acks) {
    const set = present.get(ack.batch)
    if (set === undefined) problems.push(`acknowledged batch ${ack.batch} is missing`)
    else if (set.size !== ack.size) problems.push(`acknowledged batch ${ack.batch} has ${set.size} of ${ack.size} ids`)
  }
  // Order and atomicity across ids: a writer's pointer moved in the same batch as its ids, so
  // it names a batch that is there, no older than the writer's last acknowledged one.
  const lastAcked = new Map<string, number>()
  for (const ack of acks) {
    const key = `${ack.run}:w${ack.writer}`
    lastAcked.set(key, Math.max(lastAcked.get(key) ?? -1, Number(ack.batch.split(':')[1])))
  }
  for (const [key, batch] of pointers) {
    if (!present.has(batch)) problems.push(`pointer ${key} names batch ${batch}, which is not there`)
    const acked = lastAcked.get(key)
    if (acked !== undefined && Number(batch.split(':')[1]) < acked) {
      problems.push(`pointer ${key} names batch ${batch}, older than acknowledged batch ${key.split(':')[0]}:${acked}`)
    }
  }
  for (const key of lastAcked.keys()) {
    if (!pointers.has(key)) problems.push(`pointer ${key} is missing though its writer was acknowledged`)
  }
  return problems
}
