/**
 * Pure parts: the PRNG, Go-compatible JSON, address parsing, toxic parsing, and the options
 * `startFaultProxy` refuses.
 */
import { describe, expect, it } from 'vitest'
import { splitHostPort } from '../src/address.js'
import { ApiError, float32Json, goJson } from '../src/go-json.js'
import { FAULT_ERR_INVALID_ARGUMENT, FAULT_ERR_LISTEN, FAULT_PROXY_ERROR_CODES, Prng, startFaultProxy } from '../src/index.js'
import { parseNewToxic, parseToxicUpdate } from '../src/toxic.js'
import { startServer } from './helpers.js'

describe('Prng', () => {
  it('is a pure function of its seed', () => {
    const draw = (seed: number): number[] => {
      const prng = new Prng(seed)
      return Array.from({ length: 8 }, () => prng.nextUint32())
    }
    expect(draw(42)).toEqual(draw(42))
    expect(draw(42)).not.toEqual(draw(43))
    expect(draw(-1)).not.toEqual(draw(2 ** 32 - 1))
    expect(draw(Number.MAX_SAFE_INTEGER)).toHaveLength(8)
    expect(() => new Prng(1.5)).toThrow(RangeError)
  })

  it('draws uniformly enough in range', () => {
    const prng = new Prng(9)
    const counts = [0, 0, 0, 0]
    for (let i = 0; i < 4000; i++) {
      const f = prng.nextFloat()
      expect(f).toBeGreaterThanOrEqual(0)
      expect(f).toBeLessThan(1)
      counts[prng.nextInt(4)]! += 1
    }
    for (const count of counts) expect(count).toBeGreaterThan(850)
    expect(prng.nextInt(0)).toBe(0)
  })
})

describe('Go-compatible JSON', () => {
  it('escapes as encoding/json does and prints float32 in short form', () => {
    expect(goJson({ name: 'wan/a->b & <c>' })).toBe('{"name":"wan/a-\\u003eb \\u0026 \\u003cc\\u003e"}')
    expect(float32Json(Math.fround(0.1))).toBe(0.1)
    expect(float32Json(0.3)).toBe(0.3)
    expect(float32Json(1)).toBe(1)
  })

  it('splits host:port as net.SplitHostPort does', () => {
    expect(splitHostPort('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 })
    expect(splitHostPort('[::1]:8474')).toEqual({ host: '::1', port: 8474 })
    expect(splitHostPort(':80')).toEqual({ host: '', port: 80 })
    expect(splitHostPort('localhost')).toEqual({ error: 'missing port in address' })
    expect(splitHostPort('::1:80')).toEqual({ error: 'too many colons in address' })
    expect(splitHostPort('a:99999')).toEqual({ error: 'invalid port' })
  })

  it('parses toxics with Toxiproxy\'s defaults, field names case-insensitively', () => {
    const toxic = parseNewToxic({ Type: 'latency', Attributes: { Latency: 5 } }, () => false)
    expect(toxic).toMatchObject({ name: 'latency_downstream', stream: 'downstream', direction: 'downstream', toxicity: 1, attributes: { latency: 5, jitter: 0 } })
    expect(() => parseNewToxic({ type: 'latency', attributes: { latency: 1.5 } }, () => false)).toThrow(ApiError)
    const updated = parseToxicUpdate(toxic, { toxicity: null, attributes: { jitter: 2 } })
    expect(updated).toMatchObject({ toxicity: 1, attributes: { latency: 5, jitter: 2 } })
  })
})

describe('startFaultProxy', () => {
  it('refuses bad options with FAULT_ERR_* codes', async () => {
    expect(FAULT_PROXY_ERROR_CODES).toContain(FAULT_ERR_LISTEN)
    await expect(startFaultProxy({ port: 0, seed: 0.5 })).rejects.toMatchObject({ code: FAULT_ERR_INVALID_ARGUMENT })
    await expect(startFaultProxy({ port: 70_000 })).rejects.toMatchObject({ code: FAULT_ERR_INVALID_ARGUMENT })
    const { server } = await startServer()
    await expect(startFaultProxy({ port: server.port })).rejects.toMatchObject({ code: FAULT_ERR_LISTEN })
  })

  it('stops twice without complaint and reports a random seed when given none', async () => {
    const server = await startFaultProxy({ port: 0 })
    expect(Number.isSafeInteger(server.seed)).toBe(true)
    await server.stop()
    await server.stop()
  })
})
