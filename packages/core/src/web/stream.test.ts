import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib'
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

  it('a deflate fetch Response is decoded whether zlib-wrapped or raw, however its first bytes arrive', async () => {
    const raw = Buffer.from(body.join(''))
    for (const encoded of [deflateSync(raw), deflateSync(raw, { windowBits: 9 }), deflateRawSync(raw)]) {
      for (const pieces of [[encoded], [encoded.subarray(0, 1), encoded.subarray(1, 2), encoded.subarray(2)]]) {
        const { exchange, records } = begin()
        const source = new ReadableStream<Uint8Array>({
          start(controller) {
            for (const piece of pieces) controller.enqueue(new Uint8Array(piece))
            controller.close()
          },
        })
        const upstream = new Response(source, {
          headers: { 'content-type': 'text/event-stream', 'content-encoding': 'deflate' },
        })
        const response = carryResponse(exchange, upstream)
        expect(response.headers.get('content-encoding')).toBeNull()
        expect(await response.text()).toContain(fixedDelta)
        expect(records[0]).toMatchObject({ status: 'complete', usage: { input: 7, cacheRead: 90, output: 4 } })
      }
    }
  })

  it('a reader that cancels with a reason (an AbortSignal) left: aborted; a source that fails cut the body', async () => {
    const left = begin()
    const open = () =>
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(body[0]))
        },
      })
    const response = carryResponse(
      left.exchange,
      new Response(open(), { headers: { 'content-type': 'text/event-stream' } }),
    )
    const controller = new AbortController()
    const piped = response.body!.pipeTo(
      new WritableStream({
        write: () => controller.abort(new DOMException('This operation was aborted', 'AbortError')),
      }),
      { signal: controller.signal },
    )
    await expect(piped).rejects.toThrow()
    await new Promise((r) => setTimeout(r, 10))
    expect(left.records[0]).toMatchObject({ status: 'aborted' })

    const cut = begin()
    const failing = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(body[0]))
        setTimeout(() => controller.error(new Error('upstream reset')), 5)
      },
    })
    const broken = carryResponse(
      cut.exchange,
      new Response(failing, { headers: { 'content-type': 'text/event-stream' } }),
    )
    await expect(broken.text()).rejects.toThrow()
    await new Promise((r) => setTimeout(r, 10))
    expect(cut.records[0]).toMatchObject({ status: 'incomplete', error: 'upstream reset' })
  })

  it('drops the ETag of a body it reads: the head leaves before the body, which may be rewritten', async () => {
    const { exchange } = begin()
    const upstream = new Response(body.join(''), { headers: { 'content-type': 'text/event-stream', etag: '"abc"' } })
    const response = carryResponse(exchange, upstream)
    expect(response.headers.get('etag')).toBeNull()
    await response.text()
  })

  it('a body read already is left as it is, with a passthrough record; no body reads as an empty one', async () => {
    const used = begin()
    const upstream = new Response(body.join(''), { headers: { 'content-type': 'text/event-stream' } })
    await upstream.text()
    expect(carryResponse(used.exchange, upstream)).toBe(upstream)
    expect(used.records[0]).toMatchObject({
      status: 'passthrough',
      passthrough: { reason: 'the response body was read already' },
    })
    const locked = begin()
    const held = new Response(body.join(''), { headers: { 'content-type': 'text/event-stream' } })
    held.body!.getReader()
    expect(() => carryResponse(locked.exchange, held)).not.toThrow()
    expect(locked.records).toHaveLength(1)
    const none = begin()
    carryResponse(none.exchange, new Response(null, { headers: { 'content-type': 'application/json' } }))
    expect(none.records[0]).toMatchObject({ status: 'passthrough', passthrough: { reason: 'malformed JSON body' } })
  })
})
