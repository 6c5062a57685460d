import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { createMeter } from '../meter.js'
import type { UsagewireOptions } from '../options.js'
import type { UsageRecord } from '../record.js'

const DIALECTS = new URL('../dialects/', import.meta.url)

/** Replays a dialect fixture (body and its expect.json) through a meter, the way an adapter would. */
function replay(fixture: string, options: UsagewireOptions = {}, body?: unknown): UsageRecord {
  const bodyFile = readFileSync(new URL(fixture, DIALECTS))
  const expectation = JSON.parse(readFileSync(new URL(fixture.replace(/\.\w+$/, '.expect.json'), DIALECTS), 'utf8'))
  const records: UsageRecord[] = []
  const meter = createMeter({ ...options, onUsage: (r) => records.push(r) })
  const exchange = meter.begin({ method: 'POST', url: expectation.path, body })!
  const type = expectation.contentType as string
  exchange.respond({ status: 200, headers: (n) => (n === 'content-type' ? type : undefined) }, { decoders: [] })
  exchange.push(bodyFile)
  exchange.end()
  exchange.finish({ kind: 'end' })
  return records[0]!
}

describe('cost in the record', () => {
  it('a streamed and a whole response with the same usage cost the same', () => {
    const streamed = replay('anthropic-messages/fixtures/anthropic-cache-read-and-write.sse')
    const whole = replay('anthropic-messages/fixtures/anthropic-json-cache-read-and-write.json')
    expect([streamed.streaming, whole.streaming]).toEqual([true, false])
    expect(streamed.cost).toEqual(whole.cost)
    expect(streamed.cost).toMatchObject({ currency: 'USD', total: 0.01638915, model: 'claude-sonnet-4-5' })

    const chatStreamed = replay('openai-chat/fixtures/chat-openai-cached-usage-chunk.sse')
    const chatWhole = replay('openai-chat/fixtures/chat-json-cached.json')
    expect(chatStreamed.cost).toEqual(chatWhole.cost)
    // input 86 at $2.50, cached 1920 at $1.25, output 300 at $10 (gpt-4o-2024-08-06 → gpt-4o).
    expect(chatStreamed.cost).toMatchObject({ input: 0.000215, cacheRead: 0.0024, output: 0.003, model: 'gpt-4o' })
  })

  it('prices the TTL split of a cache write that the stream reported', () => {
    const record = replay('anthropic-messages/fixtures/anthropic-cache-ttl-split.sse')
    expect(record.usage).toMatchObject({ cacheWrite: 4000, cacheWrite5m: 1000, cacheWrite1h: 3000 })
    expect(record.cost?.cacheWrite).toBe(0.02175)
  })

  it('prices Gemini thoughts as output, the part of output they are', () => {
    const record = replay('gemini/fixtures/gemini-cumulative-snapshots.sse')
    expect(record.usage).toMatchObject({ output: 208, reasoning: 185 })
    expect(record.cost).toMatchObject({ output: 0.00052, model: 'gemini-2.5-flash' })
  })

  it('prices a Bedrock stream, its inference-profile id and its cache TTL split', () => {
    const record = replay('bedrock-converse/fixtures/bedrock-converse-stream-cache-read-write.eventstream')
    expect(record.model).toBe('us.anthropic.claude-sonnet-4-20250514-v1:0')
    expect(record.usage).toMatchObject({ cacheWrite5m: 1000, cacheWrite1h: 200 })
    expect(record.cost).toMatchObject({
      model: 'claude-sonnet-4',
      input: 0.000072,
      cacheRead: 0.0018,
      cacheWrite: 0.00495,
      output: 0.00045,
      total: 0.007272,
    })
  })

  it('a model with no price has no cost at all', () => {
    const record = replay('openai-chat/fixtures/chat-openai-cache-write-tokens.sse')
    expect(record.model).toBe('gpt-5.6-2026-07-15')
    expect(record).not.toHaveProperty('cost')
  })

  it('prices by the options: extend, table, or no cost with false', () => {
    const extend = {
      'gpt-5.6': { input: 2, output: 10, cacheRead: 0.2, cacheWrite: 2.5, asOf: '2026-07-15' },
    }
    const extended = replay('openai-chat/fixtures/chat-openai-cache-write-tokens.sse', { prices: { extend } })
    expect(extended.cost).toMatchObject({ model: 'gpt-5.6', cacheWrite: 0.01024, asOf: '2026-07-15' })

    const replaced = replay('anthropic-messages/fixtures/anthropic-cache-read-and-write.sse', {
      prices: { table: extend },
    })
    expect(replaced).not.toHaveProperty('cost')

    const off = replay('anthropic-messages/fixtures/anthropic-cache-read-and-write.sse', { prices: false })
    expect(off).not.toHaveProperty('cost')
  })

  it('a response whose usage nobody reported has no cost, not a cost of 0', () => {
    const records: UsageRecord[] = []
    const meter = createMeter({ onUsage: (r) => records.push(r) })
    const exchange = meter.begin({ method: 'POST', url: '/v1/messages', body: { model: 'claude-haiku-4-5' } })!
    exchange.respond(
      { status: 529, headers: (n) => (n === 'content-type' ? 'application/json' : undefined) },
      { decoders: [] },
    )
    exchange.push(Buffer.from('{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'))
    exchange.end()
    exchange.finish({ kind: 'end' })
    expect(records[0]!.status).toBe('upstream_error')
    expect(records[0]).not.toHaveProperty('cost')
  })

  it('rejects a malformed prices option when the middleware is created', () => {
    expect(() => createMeter({ prices: { extend: { m: { input: 1, output: 1 } } } as never })).toThrow(/asOf/)
  })
})
