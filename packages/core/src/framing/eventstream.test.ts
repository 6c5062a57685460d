import { EventStreamCodec, type MessageHeaders } from '@smithy/eventstream-codec'
import { fromUtf8, toUtf8 } from '@smithy/util-utf8'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { inspect } from '../testing/inspect.js'
import { EventStreamFramer, type EventStreamEvent } from './eventstream.js'
import { MAX_WINDOW, useSimdKernel } from './simd.js'
import type { EventSink, PayloadScanner } from './types.js'

const codec = new EventStreamCodec(toUtf8, fromUtf8)

function frame(headers: Record<string, string>, payload: string): Buffer {
  const h: MessageHeaders = {}
  for (const [name, value] of Object.entries(headers)) h[name] = { type: 'string', value }
  return Buffer.from(codec.encode({ headers: h, body: fromUtf8(payload) }))
}

const event = (type: string, payload: object) =>
  frame({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify(payload))
const chunk = (inner: object) =>
  event('chunk', { bytes: Buffer.from(JSON.stringify(inner)).toString('base64'), p: 'abcd' })

/** Records what the framer asks; rewrites events named `usage` by appending `"!"` to their payload's `n`. */
class Sink implements EventSink {
  readonly seen: string[] = []
  readonly errors: string[] = []
  stops: string[] = []
  constructor(private readonly framer: EventStreamFramer) {}
  passes = () => false
  readsFrom = () => -1
  oversized = (): PayloadScanner | undefined => undefined
  stopped(reason: string, at: number) {
    this.stops.push(`${reason}@${at}`)
  }
  upstreamError(error: string, at: number) {
    this.errors.push(`${error}@${at}`)
  }
  event(buf: Buffer, start: number, end: number, at: number) {
    const decoded = this.framer.decode(buf, start, end) as EventStreamEvent
    this.seen.push(`${decoded.name}@${at}`)
    if (decoded.name !== 'usage') return undefined
    const json = JSON.parse(decoded.data) as { n: string }
    return this.framer.encode(buf, start, end, decoded, JSON.stringify({ ...json, n: `${json.n}!` }))
  }
}

function run(body: Buffer, sizes: number[] = [body.length], max = 1 << 20) {
  const framer = new EventStreamFramer(max)
  const sink = new Sink(framer)
  const out: Buffer[] = []
  let at = 0
  for (let n = 0; at < body.length; n++) {
    const size = Math.max(1, sizes[n % sizes.length]!)
    const piece = at === 0 && size >= body.length ? body : body.subarray(at, at + size)
    out.push(...framer.push(piece, sink))
    at += size
  }
  out.push(...framer.end(sink))
  return { out, output: Buffer.concat(out), sink }
}

const decodeAll = (body: Buffer) => {
  const messages = []
  for (let pos = 0; pos < body.length; pos += body.readUInt32BE(pos))
    messages.push(codec.decode(body.subarray(pos, pos + body.readUInt32BE(pos))))
  return messages
}

const plain = Buffer.concat([event('text', { t: 'a' }), event('text', { t: 'bb' }), event('text', { t: 'ccc' })])
const mixed = Buffer.concat([event('text', { t: 'hello' }), event('usage', { n: '41' }), event('text', { t: 'bye' })])

describe('the AWS event stream framer', () => {
  it('hands back a chunk of whole untouched frames as the same Buffer', () => {
    const { out, sink } = run(plain)
    expect(out).toHaveLength(1)
    expect(out[0]).toBe(plain)
    expect(sink.seen).toEqual(['text@0', `text@${plain.readUInt32BE(0)}`, expect.stringMatching(/^text@/)])
  })

  it('re-encodes only the frame whose payload changed, with valid lengths and CRCs', () => {
    const { output } = run(mixed)
    const messages = decodeAll(output) // throws on a bad CRC
    expect(messages.map((m) => toUtf8(m.body))).toEqual(['{"t":"hello"}', '{"n":"41!"}', '{"t":"bye"}'])
    expect(messages[1]!.headers[':event-type']).toEqual({ type: 'string', value: 'usage' })
    const first = mixed.readUInt32BE(0)
    expect(output.subarray(0, first).equals(mixed.subarray(0, first))).toBe(true)
    expect(output.subarray(output.length - 40).equals(mixed.subarray(mixed.length - 40))).toBe(true)
  })

  it('any chunking yields the same output bytes and the same events at the same offsets', () => {
    const whole = run(mixed)
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 80 }), { minLength: 1, maxLength: 10 }), (sizes) => {
        const cut = run(mixed, sizes)
        expect(cut.output.equals(whole.output)).toBe(true)
        expect(cut.sink.seen).toEqual(whole.sink.seen)
      }),
      { numRuns: 200, examples: [[[1]], [[3]], [[4]], [[12, 1]]] },
    )
  })

  it('passes exception and error frames untouched, unread, and tells the sink', () => {
    const throttled = frame(
      { ':exception-type': 'throttlingException', ':content-type': 'application/json', ':message-type': 'exception' },
      '{"message":"slow down"}',
    )
    const failed = frame({ ':error-code': 'InternalFailure', ':error-message': 'boom', ':message-type': 'error' }, '')
    const body = Buffer.concat([event('text', { t: 'a' }), throttled, failed])
    const { output, sink } = run(body, [5])
    expect(output.equals(body)).toBe(true)
    expect(sink.seen).toEqual(['text@0'])
    const at = body.readUInt32BE(0)
    expect(sink.errors).toEqual([`throttlingException@${at}`, `InternalFailure@${at + throttled.length}`])
  })

  it('a frame cut short at the end leaves as it came', () => {
    const body = mixed.subarray(0, mixed.length - 7)
    const { output, sink } = run(body, [9])
    expect(output.length).toBe(body.length + 1) // the rewritten usage frame is one byte longer
    expect(output.subarray(output.length - 20).equals(body.subarray(body.length - 20))).toBe(true)
    expect(sink.seen).toHaveLength(2)
  })

  it('stops on a length no frame has, or one over the bound, and passes every byte', () => {
    const garbage = Buffer.from('{"not":"an event stream"}')
    const bad = run(garbage, [3])
    expect(bad.output.equals(garbage)).toBe(true)
    expect(bad.sink.stops).toHaveLength(1)
    const big = run(mixed, [7], 40)
    expect(big.output.equals(mixed)).toBe(true)
    expect(big.sink.stops[0]).toMatch(/over maxEventBytes/)
  })
})

describe('frames alike one the sink passed by its first bytes', () => {
  /** Passes a `text` frame whose payload begins `{"t":"` by those bytes, as a dialect's byte test would. */
  class Passing extends Sink {
    passedBy = -1
    constructor(private readonly f: EventStreamFramer) {
      super(f)
    }
    override event(buf: Buffer, start: number, end: number, at: number) {
      this.passedBy = -1
      const replacement = super.event(buf, start, end, at)
      const payload = start + 12 + buf.readUInt32BE(start + 4)
      const decoded = this.f.decode(buf, start, end)!
      if (decoded.name === 'text' && buf.toString('latin1', payload, payload + 6) === '{"t":"') {
        this.passedBy = payload + 6 - start
      }
      return replacement
    }
  }
  const text = (t: string) => event('text', { t })
  const headers = { ':event-type': 'text', ':content-type': 'application/json' }
  // The same headers, byte for byte, but for the value of :message-type.
  const failed = frame({ ...headers, ':message-type': 'error' }, '{"t":"oops"}')
  const body = Buffer.concat([
    text('a'),
    text('bb'),
    text('ccc'),
    event('text', { u: 'other first bytes' }),
    text('dd'),
    failed,
    text('e'),
    event('usage', { n: '7' }),
    text('f'),
    event('texts', { t: 'another name' }),
    text('g'),
  ])
  const run2 = (sizes: number[]) => {
    const framer = new EventStreamFramer(1 << 20)
    const sink = new Passing(framer)
    const out: Buffer[] = []
    for (let at = 0, n = 0; at < body.length; n++) {
      const size = Math.max(1, sizes[n % sizes.length]!)
      out.push(...framer.push(body.subarray(at, at + size), sink))
      at += size
    }
    out.push(...framer.end(sink))
    return { output: Buffer.concat(out), sink }
  }

  it('pass without the sink being asked; every frame that differs in those bytes is asked, or reported', () => {
    const { output, sink } = run2([body.length])
    const names = sink.seen.map((s) => s.split('@')[0])
    // a is asked and passes by its first bytes, and every later text frame is alike. The `u` frame differs
    // in its payload, `usage` and `texts` in a header, and the error frame only in a header value: it is
    // reported, not passed.
    expect(names).toEqual(['text', 'text', 'usage', 'texts'])
    expect(sink.seen[1]).toBe(`text@${text('a').length + text('bb').length + text('ccc').length}`)
    expect(sink.errors).toEqual([expect.stringMatching(/^error@/)])
    expect(decodeAll(output).map((m) => toUtf8(m.body))).toContain('{"n":"7!"}')
  })

  it('the same frames are asked, and the same bytes leave, however the stream is cut', () => {
    const whole = run2([body.length])
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 8 }), (sizes) => {
        const cut = run2(sizes)
        expect(cut.output.equals(whole.output)).toBe(true)
        expect(cut.sink.seen).toEqual(whole.sink.seen)
        expect(cut.sink.errors).toEqual(whole.sink.errors)
      }),
      { numRuns: 200, examples: [[[1]], [[13]], [[body.length - 1]]] },
    )
  })
  describe('in the SIMD kernel', () => {
    afterEach(() => useSimdKernel(true))
    const kinds = [
      (n: number) => text('x'.repeat(n % 300)),
      (n: number) => text(`${'\u00e9'.repeat(n % 5)}"${n}`),
      () => event('text', { u: 'other first bytes' }),
      () => failed,
      (n: number) => event('usage', { n: String(n) }),
      () => event('texts', { t: 'another name' }),
      (n: number) => frame({ ...headers, ':message-type': 'event', extra: 'h'.repeat(n % 40) }, '{"t":"x"}'),
    ]
    const runWith = (frames: Buffer[], sizes: number[], kernel: boolean, first = 16) => {
      useSimdKernel(kernel, 0, first)
      const framer = new EventStreamFramer(1 << 20)
      const sink = new Passing(framer)
      const all = Buffer.concat(frames)
      const out: Buffer[] = []
      for (let at = 0, n = 0; at < all.length; n++) {
        const size = Math.max(1, sizes[n % sizes.length]!)
        out.push(...framer.push(all.subarray(at, at + size), sink))
        at += size
      }
      out.push(...framer.end(sink))
      return { output: Buffer.concat(out), seen: sink.seen, errors: sink.errors, stops: sink.stops }
    }

    it('asks about and passes the same frames as the compare in JavaScript, in any windows and chunks', () => {
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.nat({ max: kinds.length - 1 }), fc.nat(), fc.nat({ max: 40 })), { maxLength: 60 }),
          fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 4 }),
          fc.integer({ min: 1, max: 5000 }),
          (picks, sizes, first) => {
            // Runs of the same frame, as a stream of text deltas sends them.
            const frames = picks.flatMap(([kind, n, times]) => Array.from({ length: times }, () => kinds[kind]!(n)))
            expect(runWith(frames, sizes, true, first)).toEqual(runWith(frames, sizes, false))
          },
        ),
        { numRuns: 100 },
      )
    })

    it('passes frames longer than its longest window, and corrupt lengths stop the stream as before', () => {
      const long = text('y'.repeat(MAX_WINDOW + 10))
      const frames = [text('a'), text('b'), long, text('c'), long, event('usage', { n: '1' }), text('d')]
      const whole = runWith(frames, [1 << 20], true)
      expect(whole).toEqual(runWith(frames, [1 << 20], false))
      expect(whole.seen.map((s) => s.split('@')[0])).toEqual(['text', 'usage'])
      const corrupt = Buffer.concat([...Array.from({ length: 30 }, () => text('zz')), Buffer.alloc(40, 0xff)])
      const broken = runWith([corrupt], [corrupt.length], true)
      expect(broken).toEqual(runWith([corrupt], [corrupt.length], false))
      expect(broken.stops).toHaveLength(1)
      expect(broken.output.equals(corrupt)).toBe(true)
    })
  })
})

describe('the event stream through the processor', () => {
  const body = Buffer.concat([
    chunk({ type: 'message_start', message: { model: 'm', usage: { input_tokens: 0, output_tokens: 1 } } }),
    chunk({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'hi' } }),
    chunk({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 5 } }),
    chunk({ type: 'message_stop', 'amazon-bedrock-invocationMetrics': { inputTokenCount: 77, outputTokenCount: 5 } }),
  ])
  const options = { path: '/model/m/invoke-with-response-stream', contentType: 'application/vnd.amazon.eventstream' }

  it('any chunking yields identical output frames and the same record', () => {
    const whole = inspect(body, options)
    expect(whole.record.usage).toMatchObject({ input: 77, output: 5 })
    const { id: _i, timing: _t, ...record } = whole.record
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 120 }), { minLength: 1, maxLength: 10 }), (chunks) => {
        const cut = inspect(body, { ...options, chunks })
        expect(cut.output.equals(whole.output)).toBe(true)
        const { id: _id, timing: _timing, ...rest } = cut.record
        expect(rest).toEqual(record)
      }),
      { numRuns: 150 },
    )
  })

  it('the content frame between the usage frames leaves byte for byte', () => {
    const { output } = inspect(body, options)
    const second = body.subarray(body.readUInt32BE(0), body.readUInt32BE(0) + body.readUInt32BE(body.readUInt32BE(0)))
    expect(output.includes(second)).toBe(true)
    expect(output.equals(body)).toBe(false)
  })
})
