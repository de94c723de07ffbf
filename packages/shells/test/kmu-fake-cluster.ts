/**
 * A stand-in for ClusterClient in KMU unit tests: records every call and answers with a handler,
 * so that tests can check what was sent (or that nothing was) and what KMU printed.
 */
import type { ServerEntry } from '@hsmlab/client'
import type { KmuCluster, KmuIo } from '../src/kmu/kmu-context.js'

export interface RecordedCall {
  serverId: number
  op: string
  args: Record<string, unknown>
  options: { timeoutMs?: number }
}

export type FakeHandler = (serverId: number, op: string, args: Record<string, unknown>) => unknown

/** A cluster of `count` HSMs; those in `down` are unreachable. */
export function fakeCluster (handler: FakeHandler, opts: { count?: number, down?: number[] } = {}): { cluster: KmuCluster, calls: RecordedCall[] } {
  const count = opts.count ?? 2
  const down = opts.down ?? []
  const calls: RecordedCall[] = []
  const servers = Array.from({ length: count }, (_, id): ServerEntry => {
    const config = { name: `10.0.0.${id + 1}`, hostname: '127.0.0.1', port: 2225 + id, caFile: '/dev/null', enabled: true }
    return down.includes(id)
      ? { id, config, error: new Error('connect ECONNREFUSED') }
      : { id, config, connection: { closed: false } as unknown as ServerEntry['connection'] }
  })
  const call = async (serverId: number, op: string, args: unknown, options: { timeoutMs?: number } = {}): Promise<unknown> => {
    const server = servers[serverId]
    if (server?.connection === undefined) throw Object.assign(new Error('not connected'), { code: 'CLIENT_ERR_CLOSED' })
    calls.push({ serverId, op, args: args as Record<string, unknown>, options })
    return await handler(serverId, op, args as Record<string, unknown>)
  }
  const cluster = {
    servers,
    connected: () => servers.filter(s => s.connection !== undefined),
    call,
    fanOut: async (op: string, args: unknown, ids?: number[]) => await Promise.all((ids ?? servers.map(s => s.id)).map(async id => {
      const server = servers[id] as ServerEntry
      try {
        return { server, ok: true, result: await call(id, op, args) }
      } catch (error) {
        return { server, ok: false, error }
      }
    }))
  }
  return { cluster: cluster as unknown as KmuCluster, calls }
}

/** Captures what a session writes; answers prompts from `answers` in order. */
export function captureIo (answers: string[] = []): KmuIo & { text: () => string, prompts: string[] } {
  let out = ''
  const prompts: string[] = []
  const read = async (prompt: string): Promise<string | undefined> => {
    out += prompt
    prompts.push(prompt)
    return answers.shift()
  }
  return {
    write: (text: string) => { out += text },
    readLine: read,
    readSecret: read,
    text: () => out,
    prompts
  }
}
