import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import { UsageTransform, usageTransformStream } from './streams.js'

const body = [
  'event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":7,"cache_read_input_tokens":90,"output_tokens":1}}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}\n\n',
  'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}\n\n',
]
const options = { path: '/v1/messages', contentType: 'text/event-stream' }
const fixedDelta = '"usage":{"output_tokens":4,"input_tokens":7,"cache_read_input_tokens":90}'

describe('stream wrappers around the push processor', () => {
  it('Node Transform: rewrites in a pipeline and exposes the result', async () => {
    const transform = new UsageTransform(options)
    const out: Buffer[] = []
    await pipeline(Readable.from(body.map((s) => Buffer.from(s))), transform, async (source) => {
      for await (const chunk of source) out.push(chunk as Buffer)
    })
    expect(Buffer.concat(out).toString()).toContain(fixedDelta)
    expect(transform.processor.result().usage).toEqual({ input: 7, cacheRead: 90, output: 4 })
  })

  it('WHATWG TransformStream: the same through pipeThrough', async () => {
    const stream = usageTransformStream(options)
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of body) controller.enqueue(new TextEncoder().encode(part))
        controller.close()
      },
    })
    const text = await new Response(source.pipeThrough(stream)).text()
    expect(text).toContain(fixedDelta)
    expect(stream.processor.result().final).toBe(true)
  })
})
