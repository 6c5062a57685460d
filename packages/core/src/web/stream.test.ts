import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { createMeter } from '../meter.js'
import type { UsageRecord } from '../record.js'
import { carryResponse } from './stream.js'

const body = [
  'event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":7,"cache_read_input_tokens":90,"output_tokens":1}}}\n\n',
  'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}\n\n',
]
const fixedDelta = '"usage":{"output_tokens":4,"input_tokens":7,"cache_read_input_tokens":90}'

function begin() {
  const records: UsageRecord[] = []
  const exchange = createMeter({ onUsage: (r) => records.push(r) }).begin({ method: 'POST', url: '/v1/messages' })!
  return { exchange, records }
}

describe('the WHATWG carrier', () => {
  it('WHATWG carrier: a fetch Response carried through the same Exchange and record', async () => {
    const { exchange, records } = begin()
    const upstream = new Response(body.join(''), {
      headers: { 'content-type': 'text/event-stream', 'content-length': String(body.join('').length) },
    })
    const response = carryResponse(exchange, upstream)
    expect(response.headers.get('content-length')).toBeNull()
    expect(await response.text()).toContain(fixedDelta)
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ status: 'complete', final: true, usage: { input: 7, output: 4 } })
  })

  it('a gzip fetch Response is decoded, rewritten and sent identity', async () => {
    const { exchange, records } = begin()
    const upstream = new Response(gzipSync(body.join('')), {
      headers: { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' },
    })
    const response = carryResponse(exchange, upstream)
    expect(response.headers.get('content-encoding')).toBeNull()
    expect(await response.text()).toContain(fixedDelta)
    expect(records[0]).toMatchObject({ status: 'complete', usage: { input: 7, cacheRead: 90, output: 4 } })
  })
})
