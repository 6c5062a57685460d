import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { createMeter } from '../meter.js'
import type { UsageRecord } from '../record.js'
import { NODE_DECODERS } from './decode.js'
import { UsageTransform } from './stream.js'

const body = [
  'event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":7,"cache_read_input_tokens":90,"output_tokens":1}}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}\n\n',
  'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}\n\n',
]
const fixedDelta = '"usage":{"output_tokens":4,"input_tokens":7,"cache_read_input_tokens":90}'

function begin() {
  const records: UsageRecord[] = []
  const meter = createMeter({ onUsage: (r) => records.push(r) })
  const exchange = meter.begin({ method: 'POST', url: '/v1/messages' })!
  return { exchange, records }
}

const headers =
  (map: Record<string, string>) =>
  (name: string): string | undefined =>
    map[name]

describe('stream carriers of an Exchange', () => {
  it('Node Transform: rewrites in a pipeline, decodes gzip, and finishes into one record', async () => {
    const { exchange, records } = begin()
    const decision = exchange.respond(
      { status: 200, headers: headers({ 'content-type': 'text/event-stream', 'content-encoding': 'gzip' }) },
      { decoders: NODE_DECODERS },
    )
    expect(decision).toMatchObject({ read: true, decode: 'gzip', remove: ['content-length', 'content-encoding'] })
    if (!decision.read) return
    const out: Buffer[] = []
    await pipeline(Readable.from([gzipSync(body.join(''))]), new UsageTransform(exchange, decision), async (source) => {
      for await (const chunk of source) out.push(chunk as Buffer)
    })
    expect(Buffer.concat(out).toString()).toContain(fixedDelta)
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ status: 'complete', usage: { input: 7, cacheRead: 90, output: 4 } })
  })

  it('Node Transform destroyed by its source: the record is incomplete and says why', async () => {
    const { exchange, records } = begin()
    const decision = exchange.respond(
      { status: 200, headers: headers({ 'content-type': 'text/event-stream' }) },
      { decoders: [] },
    )
    if (!decision.read) throw new Error('not read')
    const source = new Readable({ read() {} })
    const transform = new UsageTransform(exchange, decision)
    const done = pipeline(source, transform, async (s) => {
      for await (const _ of s) void _
    }).catch((e: Error) => e)
    source.push(body[0])
    source.destroy(new Error('read ECONNRESET'))
    await done
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ status: 'incomplete', error: 'read ECONNRESET', final: false })
  })
})
