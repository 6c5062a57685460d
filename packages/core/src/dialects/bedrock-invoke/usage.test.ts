import { EventStreamCodec, type MessageHeaders } from '@smithy/eventstream-codec'
import { fromUtf8, toUtf8 } from '@smithy/util-utf8'
import { describe, expect, it, vi } from 'vitest'
import { createProcessor } from '../../processor.js'
import { bedrockInvoke } from './index.js'
import { fromInvocationMetrics, toInvocationMetrics } from './usage.js'

const codec = new EventStreamCodec(toUtf8, fromUtf8)
const headers: MessageHeaders = {
  ':event-type': { type: 'string', value: 'chunk' },
  ':message-type': { type: 'string', value: 'event' },
}
const chunk = (event: object) =>
  Buffer.from(
    codec.encode({
      headers,
      body: fromUtf8(JSON.stringify({ bytes: Buffer.from(JSON.stringify(event)).toString('base64') })),
    }),
  )
const events = (bytes: Uint8Array[]) => {
  const body = Buffer.concat(bytes)
  const out = []
  for (let pos = 0; pos < body.length; pos += body.readUInt32BE(pos)) {
    const message = codec.decode(body.subarray(pos, pos + body.readUInt32BE(pos)))
    out.push(JSON.parse(Buffer.from(JSON.parse(toUtf8(message.body)).bytes, 'base64').toString('utf8')))
  }
  return out
}

describe('amazon-bedrock-invocationMetrics', () => {
  it('maps to disjoint buckets: inputTokenCount excludes the cache', () => {
    const { usage, sources } = fromInvocationMetrics(
      {
        inputTokenCount: 24,
        outputTokenCount: 30,
        cacheReadInputTokenCount: 6000,
        cacheWriteInputTokenCount: 1200,
        invocationLatency: 900,
      },
      'message_stop.m',
    )
    expect(usage).toEqual({ input: 24, cacheRead: 6000, cacheWrite: 1200, output: 30 })
    expect(sources.cacheRead).toBe('message_stop.m.cacheReadInputTokenCount')
  })

  it('reports nothing for counts it lacks, so they never replace known ones', () => {
    expect(fromInvocationMetrics({ inputTokenCount: 24, outputTokenCount: null }, 'm').usage).toEqual({ input: 24 })
  })

  it('writes known counts, adding a missing cache count only when it is not 0', () => {
    const native = { inputTokenCount: 0, outputTokenCount: 30, invocationLatency: 900 }
    expect(toInvocationMetrics(native, { input: 24, cacheRead: 6000, cacheWrite: 0, output: 30 })).toEqual({
      inputTokenCount: 24,
      outputTokenCount: 30,
      invocationLatency: 900,
      cacheReadInputTokenCount: 6000,
    })
  })
})

describe('the last message_delta waits for the metrics', () => {
  const start = chunk({ type: 'message_start', message: { usage: { input_tokens: 0, output_tokens: 1 } } })
  const delta = chunk({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 7 } })
  const stop = chunk({
    type: 'message_stop',
    'amazon-bedrock-invocationMetrics': { inputTokenCount: 55, outputTokenCount: 7 },
  })
  const options = { dialect: 'bedrock-invoke', contentType: 'application/vnd.amazon.eventstream' }

  it('is held until the metrics come, then leaves with them', () => {
    const processor = createProcessor(options)
    expect(processor.push(start)).toEqual([start])
    expect(processor.push(delta)).toEqual([])
    const out = processor.push(stop)
    expect(events(out).map((e) => e.usage ?? null)).toEqual([{ output_tokens: 7, input_tokens: 55 }, null])
    expect(processor.end()).toEqual([])
    expect(processor.holding).toBe(false)
  })

  it('parses each payload once, the held one and those read ahead included, in one chunk or many', () => {
    const text = chunk({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'hi' } })
    for (const cut of [false, true]) {
      const parse = vi.spyOn(JSON, 'parse')
      const processor = createProcessor(options)
      const out = cut
        ? [start, text, delta, text, stop].flatMap((c) => processor.push(c))
        : processor.push(Buffer.concat([start, text, delta, text, stop]))
      out.push(...processor.end())
      // message_start, message_delta and message_stop: each once.
      expect(parse).toHaveBeenCalledTimes(3)
      parse.mockRestore()
      expect(events(out).map((e) => e.usage ?? null)).toEqual([
        null,
        null,
        { output_tokens: 7, input_tokens: 55 },
        null,
        null,
      ])
    }
  })

  it('is released unchanged when the body ends without metrics', () => {
    const processor = createProcessor(options)
    processor.push(start)
    expect(processor.push(delta)).toEqual([])
    const out = processor.end()
    expect(Buffer.concat(out).equals(delta)).toBe(false) // input 0 from message_start is known and written
    expect(events(out)[0].usage).toEqual({ output_tokens: 7, input_tokens: 0 })
    expect(processor.result()).toMatchObject({ ended: true, final: true })
  })
})

describe('the byte test of a chunk frame', () => {
  const reader = bedrockInvoke.reader()
  const frame = (payload: string) => Buffer.from(codec.encode({ headers, body: fromUtf8(payload) }))
  const wrapped = (event: object) => JSON.stringify({ bytes: Buffer.from(JSON.stringify(event)).toString('base64') })
  const test = (payload: string, pad = 0) => {
    // The frame inside a larger chunk, as a network read gives it.
    const buf = Buffer.concat([Buffer.alloc(pad, 7), frame(payload), Buffer.alloc(pad, 7)])
    return reader.namedPassing!(buf, pad, buf.length - pad) === -1
  }

  it('passes over text deltas, block starts and stops and pings, wherever the frame sits in its chunk', () => {
    for (const pad of [0, 1, 3, 61, 501]) {
      expect(
        test(wrapped({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'hi' } }), pad),
      ).toBe(false)
      expect(
        test(wrapped({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }), pad),
      ).toBe(false)
      expect(test(wrapped({ type: 'content_block_stop', index: 0 }), pad)).toBe(false)
      expect(test(wrapped({ type: 'ping' }), pad)).toBe(false)
    }
  })

  it.each([0, 501])(
    'reads everything else: usage events, other types, other member orders, short payloads (pad %i)',
    (pad) => {
      const read = (payload: string) => test(payload, pad)
      expect(read(wrapped({ type: 'message_delta', delta: {}, usage: { output_tokens: 7 } }))).toBe(true)
      expect(read(wrapped({ type: 'message_stop', 'amazon-bedrock-invocationMetrics': { inputTokenCount: 1 } }))).toBe(
        true,
      )
      expect(read(wrapped({ index: 0, type: 'content_block_delta' }))).toBe(true) // `type` not first
      // Types that differ from a passing one only in the last bytes compared.
      expect(read(wrapped({ type: 'content_block_dexta' }))).toBe(true)
      expect(read(wrapped({ type: 'content_block_dalta' }))).toBe(true)
      expect(read(wrapped({ type: 'content_block_stox' }))).toBe(true)
      const b64 = Buffer.from(JSON.stringify({ type: 'content_block_delta', index: 0 })).toString('base64')
      expect(read(JSON.stringify({ p: 'abc', bytes: b64 }))).toBe(true) // `bytes` not first
      expect(read('{"bytes":"eyJ0eXBl"}')).toBe(true)
      expect(read('')).toBe(true)
    },
  )
})

describe('frames alike a text delta the byte test passed', () => {
  const text = (t: string) => chunk({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } })
  const words = Array.from({ length: 40 }, (_, i) => `w${i} `)
  const start = chunk({ type: 'message_start', message: { usage: { input_tokens: 3, output_tokens: 1 } } })
  const delta = chunk({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 40 } })
  const exception = Buffer.from(
    codec.encode({
      headers: {
        ':exception-type': { type: 'string', value: 'throttlingException' },
        ':message-type': { type: 'string', value: 'exception' },
      },
      body: fromUtf8('{"message":"slow down"}'),
    }),
  )
  const options = { dialect: 'bedrock-invoke', contentType: 'application/vnd.amazon.eventstream' }
  const run = (frames: Buffer[], sizes: number[], extra: object = {}) => {
    const body = Buffer.concat(frames)
    const processor = createProcessor({ ...options, ...extra })
    const out: Uint8Array[] = []
    for (let at = 0, n = 0; at < body.length; n++) {
      const size = sizes[n % sizes.length]!
      out.push(...processor.push(body.subarray(at, at + size)))
      at += size
    }
    out.push(...processor.end())
    return { processor, out: Buffer.concat(out), result: processor.result() }
  }

  it('pass unread in a chunk of many, while a usage frame or an exception after them is still read', () => {
    const frames = [start, ...words.map(text), delta, ...words.map(text), exception]
    const parse = vi.spyOn(JSON, 'parse')
    const { out, result, processor } = run(frames, [Buffer.concat(frames).length])
    expect(parse).toHaveBeenCalledTimes(2) // message_start and message_delta
    parse.mockRestore()
    expect(processor.ledger.usage()).toMatchObject({ input: 3, output: 40 })
    expect(result.error).toMatch(/throttlingException/)
    expect(out.subarray(out.length - exception.length).equals(exception)).toBe(true)
  })

  it('every text delta is still read when the text is collected, however the stream is cut', () => {
    const frames = [start, ...words.map(text), delta]
    for (const sizes of [[1 << 20], [97], [1, 500]]) {
      const { processor } = run(frames, sizes, { collectText: true })
      expect(processor.streamedText).toBe(words.join(''))
    }
  })
})
