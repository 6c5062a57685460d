import fc from 'fast-check'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { describe, expect, it } from 'vitest'
import { SseFramer } from './sse.js'
import { firstBytes, NO_NAME, type EventSink, type PayloadScanner } from './types.js'

/** A scanner that keeps what it is fed. */
class Collector implements PayloadScanner {
  readonly pieces: Buffer[] = []
  ended = 0
  write(bytes: Buffer, start: number, end: number): void {
    this.pieces.push(Buffer.from(bytes.subarray(start, end)))
  }
  end(): void {
    this.ended++
  }
  get text(): string {
    return Buffer.concat(this.pieces).toString('utf8')
  }
}

interface SinkOptions {
  /** Whether an event with this head may leave at once. */
  passes?: (head: string) => boolean
  /** Replacement bytes for a complete event. */
  replace?: (raw: string) => string | undefined
  /** Read oversized events with a Collector (default), or let them pass unread. */
  scan?: boolean
  /** Whether a chunk of whole events may leave unframed (default: never). */
  skips?: (chunk: string) => boolean
  /** Where in the rest of a chunk the first event to read may be (a character index in `rest`). */
  readsFrom?: (rest: string) => number
}

/** A sink that records what the framer hands it. */
class Sink implements EventSink {
  /** Every complete event, raw, with its stream offset. */
  readonly events: { raw: string; at: number }[] = []
  /** In stream order: a complete event's raw bytes, or an oversized one's head and scanner. */
  readonly order: ({ kind: 'event'; raw: Buffer } | { kind: 'oversized'; head: Buffer; scanner?: Collector })[] = []
  readonly asked: string[] = []
  readonly oversize: { head: string; at: number; scanner?: Collector }[] = []
  readonly stops: string[] = []

  constructor(private readonly options: SinkOptions = {}) {}

  readonly skipped: string[] = []

  readsFrom(chunk: Buffer, start: number): number {
    const text = chunk.toString('latin1', start)
    if (this.options.readsFrom) {
      const at = this.options.readsFrom(text)
      if (at === -2) return -1 // cannot tell
      this.skipped.push(at < 0 ? text : text.slice(0, at))
      return at < 0 ? chunk.length : start + at
    }
    const skip = this.options.skips?.(text) ?? false
    if (skip) this.skipped.push(text)
    return skip ? chunk.length : -1
  }

  passes(buf: Buffer, start: number, end: number): boolean {
    const head = buf.toString('utf8', start, end)
    this.asked.push(head)
    return this.options.passes?.(head) ?? false
  }

  event(buf: Buffer, start: number, end: number, at: number): Uint8Array | undefined {
    const raw = buf.toString('utf8', start, end)
    this.events.push({ raw, at })
    this.order.push({ kind: 'event', raw: Buffer.from(buf.subarray(start, end)) })
    const replacement = this.options.replace?.(raw)
    return replacement === undefined ? undefined : Buffer.from(replacement)
  }

  oversized(buf: Buffer, start: number, end: number, at: number): PayloadScanner | undefined {
    const scanner = this.options.scan === false ? undefined : new Collector()
    this.oversize.push({ head: buf.toString('utf8', start, end), at, scanner })
    this.order.push({ kind: 'oversized', head: Buffer.from(buf.subarray(start, end)), scanner })
    return scanner
  }

  stopped(reason: string): void {
    this.stops.push(reason)
  }
}

/** Feeds `text` to a framer in chunks of `sizes` (cycled); returns the output bytes and the sink. */
function frame(
  text: string | Buffer,
  sizes: number[] = [Number.MAX_SAFE_INTEGER],
  options: SinkOptions = {},
  maxEventBytes = 1 << 20,
) {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text)
  const framer = new SseFramer(maxEventBytes)
  const sink = new Sink(options)
  const out: Buffer[] = []
  for (let at = 0, n = 0; at < bytes.length; n++) {
    const size = Math.max(1, sizes[n % sizes.length]!)
    out.push(...framer.push(bytes.subarray(at, at + size), sink))
    at += size
  }
  out.push(...framer.end(sink))
  return { framer, sink, events: sink.events.map((e) => e.raw), output: Buffer.concat(out) }
}

/** What eventsource-parser reports for `text` (a last event without its blank line included). */
function oracle(text: string): { event: string | undefined; data: string }[] {
  const events: EventSourceMessage[] = []
  const parser = createParser({ onEvent: (e) => events.push(e) })
  // At the end of the stream usagewire reads a last event that lacks its blank line (a truncated
  // stream still yields its usage); the oracle sees that blank line added.
  parser.feed(`${text}\n\n`)
  return events.map((e) => ({ event: e.event, data: e.data }))
}

const decoder = new SseFramer(1)
const decode = (raw: Buffer | string) => {
  const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw)
  return decoder.decode(buf, 0, buf.length)
}

describe("SSE framing keeps each event's raw bytes", () => {
  it('cuts LF events at the blank line, terminator included', () => {
    const { events } = frame('event: a\ndata: 1\n\nevent: b\ndata: 2\n\n')
    expect(events).toEqual(['event: a\ndata: 1\n\n', 'event: b\ndata: 2\n\n'])
  })

  it('cuts CRLF and CR events', () => {
    expect(frame('data: 1\r\n\r\ndata: 2\r\n\r\n').events).toEqual(['data: 1\r\n\r\n', 'data: 2\r\n\r\n'])
    expect(frame('data: 1\r\rdata: 2\r\r').events).toEqual(['data: 1\r\r', 'data: 2\r\r'])
  })

  it('a CR at a chunk end may be half of a CRLF', () => {
    // The line's CR ends the chunk: its LF, first in the next chunk, is no empty line.
    expect(frame('data: 1\r\n\r\n', [8]).events).toEqual(['data: 1\r\n\r\n'])
    // The blank line's CR ends the chunk: the event leaves at once, and the LF that follows is no event.
    const framer = new SseFramer(1 << 20)
    const sink = new Sink()
    expect(framer.push(Buffer.from('data: 1\r\n\r'), sink).map(String)).toEqual(['data: 1\r\n\r'])
    expect(sink.events.map((e) => e.raw)).toEqual(['data: 1\r\n\r'])
    expect(framer.push(Buffer.from('\ndata: 2\r\n\r\n'), sink).map(String)).toEqual(['\ndata: 2\r\n\r\n'])
    expect(sink.events.map((e) => e.raw)).toEqual(['data: 1\r\n\r', 'data: 2\r\n\r\n'])
  })

  it('hands back a chunk of whole events as the same Buffer, in any line ends', () => {
    for (const eol of ['\n', '\r\n', '\r']) {
      const framer = new SseFramer(1 << 20)
      const chunk = Buffer.from(`event: ping${eol}data: {}${eol}${eol}event: ping${eol}data: {}${eol}${eol}`)
      const out = framer.push(chunk, new Sink())
      expect(out).toHaveLength(1)
      expect(out[0]).toBe(chunk)
    }
  })

  it('holds back a partial event and sends it whole with the chunk that completes it', () => {
    const framer = new SseFramer(1 << 20)
    const sink = new Sink()
    expect(framer.push(Buffer.from('data: 1\n\ndata: '), sink).map(String)).toEqual(['data: 1\n\n'])
    expect(framer.push(Buffer.from('2'), sink)).toEqual([])
    expect(framer.push(Buffer.from('\n\ndata: 3\n\n'), sink).map(String)).toEqual(['data: 2\n\n', 'data: 3\n\n'])
    expect(sink.events).toEqual([
      { raw: 'data: 1\n\n', at: 0 },
      { raw: 'data: 2\n\n', at: 9 },
      { raw: 'data: 3\n\n', at: 18 },
    ])
  })

  it('a last event without its blank line is still an event at the end (docs/peer-bugs.md#row-52)', () => {
    expect(frame('data: 1\n\ndata: 2\n').events).toEqual(['data: 1\n\n', 'data: 2\n'])
    expect(frame('data: 1\r\n\r\ndata: 2', [3]).events).toEqual(['data: 1\r\n\r\n', 'data: 2'])
  })

  it('a leading BOM belongs to no event, even split across chunks', () => {
    const text = '\ufeffevent: a\ndata: 1\n\n'
    for (const sizes of [[100], [1], [2], [3], [4]]) {
      const { sink, output } = frame(text, sizes)
      expect(output.toString()).toBe(text)
      expect(sink.events).toEqual([{ raw: 'event: a\ndata: 1\n\n', at: 3 }])
    }
    // Bytes that only start like a BOM are the first event's.
    expect(
      frame(Buffer.from([0xef, 0x41, 0x0a, 0x0a]), [1]).sink.events.map((e) => Buffer.from(e.raw, 'utf8')),
    ).toEqual([Buffer.from('\ufffdA\n\n')])
  })

  it('keeps a multi-byte character split across chunks intact', () => {
    const text = 'data: {"text":"héllo 🌍"}\n\n'
    for (let cut = 1; cut < Buffer.byteLength(text); cut++) {
      const { events, output } = frame(text, [cut])
      expect(output.toString()).toBe(text)
      expect(events).toEqual([text])
    }
  })

  it('stop() hands back what it held; every later byte passes as it comes', () => {
    const framer = new SseFramer(1 << 20)
    const sink = new Sink()
    expect(framer.push(Buffer.from('data: 1\n\ndata: 2'), sink).map(String)).toEqual(['data: 1\n\n'])
    expect(framer.stop().map(String)).toEqual(['data: 2'])
    const next = Buffer.from('\n\ndata: 3\n\n')
    expect(framer.push(next, sink)).toEqual([next])
    expect(framer.end(sink)).toEqual([])
    expect(sink.events.map((e) => e.raw)).toEqual(['data: 1\n\n'])
  })

  it('a sink that stops the framer while it reads an event loses no byte', () => {
    const framer = new SseFramer(1 << 20)
    const sink: EventSink = {
      passes: () => false,
      readsFrom: () => -1,
      event: (buf, start) => {
        if (buf.toString('utf8', start, start + 7) === 'data: 2') {
          framer.stop()
          return Buffer.from('ignored')
        }
        return undefined
      },
      oversized: () => undefined,
      stopped: () => undefined,
    }
    const out = [
      ...framer.push(Buffer.from('data: 1\n\ndata:'), sink),
      ...framer.push(Buffer.from(' 2\n\ndata: 3\n\n'), sink),
    ]
    expect(Buffer.concat(out).toString()).toBe('data: 1\n\ndata: 2\n\ndata: 3\n\n')
    expect(framer.stopped).toBe(true)
  })
})

describe('reading the fields of one event', () => {
  it('reads event name and data, skipping comments and unknown fields', () => {
    const buf = Buffer.from(': keep-alive\nid: 7\nevent: message_delta\ndata: {"a":1}\n\n')
    const event = decode(buf)!
    expect(event.name).toBe('message_delta')
    expect(event.data).toBe('{"a":1}')
    expect(buf.toString('utf8', event.dataStart, event.dataEnd)).toBe('{"a":1}')
  })

  it('an event without data lines has no payload; an empty name is no name', () => {
    expect(decode('event: ping\n\n')).toBeUndefined()
    expect(decode('event:\ndata\n\n')).toMatchObject({ name: undefined, data: '' })
  })

  it('reads offsets within a larger buffer', () => {
    const buf = Buffer.from('data: 0\n\nevent: x\r\ndata: {"a":1}\r\n\r\n')
    const event = decoder.decode(buf, 9, buf.length)!
    expect(event).toMatchObject({ name: 'x', data: '{"a":1}' })
    expect(decoder.encode(buf, 9, buf.length, event, '{"a":2}').toString()).toBe('event: x\r\ndata: {"a":2}\r\n\r\n')
  })

  it('replaces only the data value of a one-line payload, keeping line ends and other lines', () => {
    const buf = Buffer.from('event: x\r\ndata:{"a":1}\r\nid: 3\r\n\r\n')
    const event = decode(buf)!
    expect(decoder.encode(buf, 0, buf.length, event, '{"a":2}').toString()).toBe(
      'event: x\r\ndata:{"a":2}\r\nid: 3\r\n\r\n',
    )
  })

  it('a new value that starts with a space keeps it, even where the old line had none after its colon', () => {
    const buf = Buffer.from('data:{"a":1}\n\n')
    const out = decoder.encode(buf, 0, buf.length, decode(buf)!, ' {"a":2}')
    expect(oracle(out.toString())).toEqual([{ event: undefined, data: ' {"a":2}' }])
  })

  it('matches event names on bytes, whole names only, in any line ends', () => {
    const names = [Buffer.from('message_start'), Buffer.from('message_delta')]
    const at = (text: string, end = text.length) => decoder.matchName(Buffer.from(text), 0, end, names)
    expect(at('event: message_delta\ndata: {}\n\n')).toBe(1)
    expect(at('event:message_start\r\ndata: {}\r\n\r\n')).toBe(0)
    expect(at('event: message_start\rdata: {}\r\r')).toBe(0)
    expect(at('event: message_deltas\ndata: {}\n\n')).toBe(-1)
    expect(at('event: ping\ndata: {}\n\n')).toBe(-1)
    expect(at('data: {}\n\n')).toBe(NO_NAME)
    expect(at('event:\r\ndata: {}\r\n\r\n')).toBe(NO_NAME)
    expect(at('event: \ndata: {}\n\n')).toBe(NO_NAME)
    // A head: the name counts only with the line end that closes it.
    expect(at('event: message_delta\n', 20)).toBe(-1)
    expect(at('event: message_delta\n', 21)).toBe(1)
  })
})

describe('an event of a chunk without CR is read as any other', () => {
  // The framer reads such an event directly when it is one `event:` line, one `data:` line and the blank
  // line; every field it gives must be the general reader's, and so must the event written back.
  const value = fc.string({ unit: fc.constantFrom('a', ' ', ':', '{', '"', 'é') })
  const line = fc.oneof(
    fc.constantFrom('event: message_delta', 'event:x', 'event:', 'event', 'event: ', 'data', 'data:', ': hi', 'id: 1'),
    value.map((v) => `data:${v}`),
    value.map((v) => `event:${v}`),
  )
  const event = fc.array(line, { minLength: 1, maxLength: 4 }).map((lines) => `${lines.join('\n')}\n\n`)

  it('gives the same fields, and the same event back when its data is replaced', () => {
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 4 }), (events) => {
        const framer = new SseFramer(1 << 20)
        const got: Array<{ bytes: Buffer; event: ReturnType<SseFramer['decode']>; rewritten?: Buffer }> = []
        const sink = {
          event: (b: Buffer, s: number, e: number) => {
            const decoded = framer.decode(b, s, e)
            got.push({
              bytes: Buffer.from(b.subarray(s, e)),
              event: decoded && { ...decoded, ...shift(decoded, -s) },
              rewritten: decoded && framer.encode(b, s, e, decoded, '{"b":2}'),
            })
            return undefined
          },
          passes: () => false,
          readsFrom: () => -1,
          oversized: () => undefined,
          stopped: () => {},
          upstreamError: () => {},
        } as unknown as EventSink
        framer.push(Buffer.from(events.join('')), sink)
        expect(got).toHaveLength(events.length)
        const general = new SseFramer(1 << 20)
        for (const { bytes, event, rewritten } of got) {
          // A copy of the event alone is not the chunk being framed: the general reader reads it.
          const expected = general.decode(bytes, 0, bytes.length)
          expect(event).toEqual(expected)
          if (expected)
            expect(rewritten!.equals(general.encode(bytes, 0, bytes.length, expected, '{"b":2}'))).toBe(true)
        }
      }),
      { numRuns: 500 },
    )
  })
})

/** An event's offsets moved by `by`. */
function shift(event: NonNullable<ReturnType<SseFramer['decode']>>, by: number) {
  return {
    dataStart: event.dataStart + by,
    dataEnd: event.dataEnd + by,
    linesStart: event.linesStart + by,
    firstLineEnd: event.firstLineEnd + by,
    linesEnd: event.linesEnd + by,
  }
}

describe('event names', () => {
  it('with the table of first bytes, match the same names as without it', () => {
    const names = ['message_start', 'message_delta', 'error', 'e', 'm'].map((n) => Buffer.from(n))
    const framer = new SseFramer(1 << 20)
    const name = fc.oneof(
      fc.constantFrom('message_start', 'message_delta', 'error', 'content_block_delta', 'e', 'm', 'x', ''),
      fc.string(),
    )
    fc.assert(
      fc.property(
        fc.subarray(names, { minLength: 0 }),
        name,
        fc.constantFrom('event: ', 'event:', 'data: ', 'id: '),
        fc.constantFrom('\n', '\r', '\r\n'),
        (list, n, field, eol) => {
          const buf = Buffer.from(`${field}${n}${eol}data: {}${eol}${eol}`)
          const plain = framer.matchName(buf, 0, buf.length, list)
          expect(framer.matchName(buf, 0, buf.length, list, firstBytes(list))).toBe(plain)
          if (field.startsWith('event') && list.some((x) => x.toString() === n)) expect(plain).toBeGreaterThanOrEqual(0)
        },
      ),
      { numRuns: 2000 },
    )
  })
})

describe('a payload over several data lines is re-encoded validly', () => {
  for (const [label, eol] of [
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ] as const) {
    it(`one data: line per line of the new payload, in the event's own line ends (${label})`, () => {
      const raw = `: c${eol}event: x${eol}data: {"usage":${eol}data: {"a":1}}${eol}id: 3${eol}${eol}`
      const buf = Buffer.from(raw)
      const event = decode(buf)!
      expect(event.data).toBe('{"usage":\n{"a":1}}')
      const next = '{"usage":\n{"a":2,\n"b":3}}'
      const out = decoder.encode(buf, 0, buf.length, event, next).toString()
      expect(out).toBe(
        `: c${eol}event: x${eol}data: {"usage":${eol}data: {"a":2,${eol}data: "b":3}}${eol}id: 3${eol}${eol}`,
      )
      expect(oracle(out)).toEqual([{ event: 'x', data: next }])
      if (eol === '\r\n') expect(out.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/)
      if (eol === '\r') expect(out).not.toContain('\n')
    })
  }

  it('lines between the data lines are kept', () => {
    const buf = Buffer.from('data: {"a":\r\nid: 1\r\n: note\r\ndata: 1}\r\n\r\n')
    const out = decoder.encode(buf, 0, buf.length, decode(buf)!, '{"a":2}').toString()
    expect(out).toBe('id: 1\r\n: note\r\ndata: {"a":2}\r\n\r\n')
  })

  it('a new payload with line breaks in a one-line event gets the line ends the event uses', () => {
    const buf = Buffer.from('event: x\r\ndata: 1')
    const out = decoder.encode(buf, 0, buf.length, decode(buf)!, '1\n2').toString()
    expect(out).toBe('event: x\r\ndata: 1\r\ndata: 2')
  })

  const eol = fc.constantFrom('\n', '\r\n', '\r')
  const other = fc.constantFrom('event: x', 'id: 1', ': c', 'retry: 5')
  const value = fc.string({ maxLength: 8 }).map((s) => s.replace(/[\r\n]/g, ''))
  const dataLine = fc.tuple(fc.constantFrom('data: ', 'data:'), value).map(([p, v]) => p + v)

  it('round-trips through eventsource-parser for any event and any new payload', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(other, dataLine), { minLength: 1, maxLength: 6 }),
        eol,
        fc.array(value, { minLength: 1, maxLength: 4 }),
        (lines, end, pieces) => {
          if (!lines.some((l) => l.startsWith('data'))) lines.push('data: x')
          const raw = lines.map((l) => l + end).join('') + end
          const buf = Buffer.from(raw)
          const event = decode(buf)!
          const next = pieces.join('\n')
          const out = decoder.encode(buf, 0, buf.length, event, next).toString()
          const [parsed] = oracle(out)
          expect(parsed!.data).toBe(next)
          expect(parsed!.event).toBe(oracle(raw)[0]!.event)
          // Every line end of the output is the event's own.
          expect(out.split(end).join('')).not.toMatch(/[\r\n]/)
          // The bytes before the first data line and after the last are kept.
          const first = raw.indexOf('data')
          const last = raw.lastIndexOf('data')
          const tail = raw.slice(raw.indexOf(end, last))
          expect(out.startsWith(raw.slice(0, first))).toBe(true)
          expect(out.endsWith(tail)).toBe(true)
        },
      ),
      { numRuns: 300 },
    )
  })
})

const line = fc.oneof(
  fc.constantFrom('event: message_delta', 'event: ping', 'event:x', ': comment', 'id: 1', 'retry: 10', 'data', 'data:'),
  fc.string({ maxLength: 12 }).map((s) => `data: ${s.replace(/[\r\n]/g, '')}`),
  fc.constantFrom('data: {"usage":{"output_tokens":5}}', 'data: é🌍', 'data:  two spaces', 'dat', 'datum: 1'),
)
const eol = fc.constantFrom('\n', '\r\n', '\r')
const stream = fc
  .array(fc.tuple(fc.array(fc.tuple(line, eol), { minLength: 1, maxLength: 4 }), eol), { maxLength: 6 })
  .map((events) => events.map(([lines, end]) => lines.map(([l, e]) => l + e).join('') + end).join(''))
const sizes = fc.array(fc.integer({ min: 1, max: 16 }), { minLength: 1, maxLength: 5 })
/** A stream with one kind of line end throughout, as servers write them. */
const uniformStream = fc
  .tuple(fc.array(fc.array(line, { minLength: 1, maxLength: 4 }), { maxLength: 8 }), eol)
  .map(([events, end]) => events.map((lines) => lines.map((l) => l + end).join('') + end).join(''))
const wideSizes = fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 5 })

describe('framing agrees with eventsource-parser on any stream and any chunking', () => {
  /** Framed in `cuts`, the stream comes out byte-exact and its events read as the oracle reads them. */
  const agrees = (text: string, cuts: number[]) => {
    const { events, output } = frame(text, cuts)
    expect(output.toString()).toBe(text)
    const ours = events
      .map((raw) => decode(raw))
      .filter((e) => e !== undefined)
      .map((e) => ({ event: e.name, data: e.data }))
    expect(ours).toEqual(oracle(text))
  }

  it('same events (type and data), byte-exact output', () => {
    fc.assert(fc.property(stream, sizes, agrees), { numRuns: 500 })
  })

  it('same events in streams with one kind of line end, in chunks of up to several events', () => {
    fc.assert(fc.property(uniformStream, wideSizes, agrees), { numRuns: 500 })
  })

  it('events that pass leave the same bytes, and every other event is still handed over whole', () => {
    fc.assert(
      fc.property(stream, sizes, (text, cuts) => {
        const passes = (head: string) => /^event: ping[\r\n]/.test(head)
        const { sink, output } = frame(text, cuts, { passes })
        expect(output.toString()).toBe(text)
        for (const head of sink.asked) expect(head.startsWith('event:')).toBe(true)
        // Only events that passed are missing from what a sink that lets nothing pass is handed.
        const all = frame(text, cuts).events
        const missing = [...all]
        for (const e of sink.events) missing.splice(missing.indexOf(e.raw), 1)
        expect(sink.events.map((e) => e.raw)).toEqual(all.filter((raw) => !missing.includes(raw)))
        for (const raw of missing) expect(passes(raw)).toBe(true)
        expect(sink.asked.filter(passes).length).toBe(missing.length)
      }),
      { numRuns: 300 },
    )
  })
})

describe('events that may leave before their end', () => {
  for (const [label, eol] of [
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ] as const) {
    it(`a named event the sink will not read leaves at once, and framing resumes after it (${label})`, () => {
      const sink = new Sink({ passes: (head) => head.startsWith('event: ping') })
      const framer = new SseFramer(24)
      const first = Buffer.from(`event: ping${eol}data: {"long":"`)
      expect(framer.push(first, sink)).toEqual([first]) // the same Buffer, nothing held
      const middle = Buffer.from('x'.repeat(100)) // past maxEventBytes, yet nothing stops: it is never held
      expect(framer.push(middle, sink)).toEqual([middle])
      const last = Buffer.from(`"}${eol}`)
      expect(framer.push(last, sink)).toEqual([last])
      const next = Buffer.from(`${eol}event: a${eol}data: 1${eol}${eol}`)
      expect(Buffer.concat(framer.push(next, sink)).toString()).toBe(next.toString())
      expect(framer.stopped).toBe(false)
      expect(sink.asked).toEqual([`event: ping${eol}data: {"long":"`])
      expect(sink.oversize).toEqual([])
      // The blank line split across chunks ended the passing event; the next one was handed over whole.
      expect(sink.events.map((e) => e.raw)).toEqual([`event: a${eol}data: 1${eol}${eol}`])
    })
  }

  it('a head completed across chunks is asked about once, and leaves with what was held', () => {
    const sink = new Sink({ passes: (head) => head.startsWith('event: content_block_delta') })
    const framer = new SseFramer(1 << 20)
    expect(framer.push(Buffer.from('data: 1\n\nevent: content_bl'), sink).map(String)).toEqual(['data: 1\n\n'])
    expect(framer.push(Buffer.from('ock_delta\r'), sink).map(String)).toEqual(['event: content_block_delta\r'])
    expect(framer.push(Buffer.from('\ndata: {}\r\n'), sink).map(String)).toEqual(['\ndata: {}\r\n'])
    expect(framer.push(Buffer.from('\r\ndata: 2\r\n\r\n'), sink).map(String)).toEqual(['\r\ndata: 2\r\n\r\n'])
    expect(sink.asked).toEqual(['event: content_block_delta\r'])
    expect(sink.events.map((e) => e.raw)).toEqual(['data: 1\n\n', 'data: 2\r\n\r\n'])
  })

  it('is asked at most once per event, and only about events with an event: line first', () => {
    const { sink, output } = frame('event: message_delta\ndata: {"a":1}\n\ndata: {"b":2}\n\n', [3])
    expect(output.toString()).toBe('event: message_delta\ndata: {"a":1}\n\ndata: {"b":2}\n\n')
    expect(sink.asked).toEqual(['event: message_delta\n'])
    expect(sink.events.map((e) => e.raw)).toEqual(['event: message_delta\ndata: {"a":1}\n\n', 'data: {"b":2}\n\n'])
  })

  it('line ends turning to CR inside an event already sent are followed', () => {
    const sink = new Sink({ passes: () => true })
    const framer = new SseFramer(1 << 20)
    const out = [
      ...framer.push(Buffer.from('event: ping\ndata: x'), sink),
      ...framer.push(Buffer.from('\r\revent: a\rdata: 1\r\r'), sink),
    ]
    expect(Buffer.concat(out).toString()).toBe('event: ping\ndata: x\r\revent: a\rdata: 1\r\r')
    expect(framer.stopped).toBe(false)
    expect(sink.events.map((e) => e.raw)).toEqual(['event: a\rdata: 1\r\r'])
  })
})

describe('an event over maxEventBytes leaves as it comes, and framing goes on', () => {
  it('its head goes to the sink once, its payload to the scanner, and the next event is read, in any chunking', () => {
    const text =
      'event: big\r\ndata: {"a":\r\n: note\r\nid: 4\r\ndata:  "0123456789"}\r\n\r\nevent: next\r\ndata: 1\r\n\r\n'
    for (const cut of [1, 2, 5, 9, 13, 1000]) {
      const { sink, output, framer } = frame(text, [cut], {}, 24)
      expect(output.toString()).toBe(text)
      expect(framer.stopped).toBe(false)
      expect(sink.stops).toEqual([])
      // However it was cut, even whole in one chunk: what the sink does with it never depends on that.
      expect(sink.oversize).toHaveLength(1)
      const big = sink.oversize[0]!
      expect(big.at).toBe(0)
      expect(Buffer.byteLength(big.head)).toBeGreaterThan(24)
      expect(text.startsWith(big.head)).toBe(true)
      expect(big.scanner!.text).toBe('{"a":\n "0123456789"}') // one space after the colon is not payload
      expect(big.scanner!.ended).toBe(1)
      // A chunk that ends on the blank line's CR ends the event there: its LF leaves between events.
      expect(sink.events.map((e) => e.raw.replace(/\n$/, ''))).toEqual(['event: next\r\ndata: 1\r\n\r'])
      expect(sink.events[0]!.at).toBe(text.indexOf('event: next'))
    }
  })

  it('a sink that does not read it lets it pass; the end of the stream ends its scanner', () => {
    const unread = frame('data: 0123456789abcdef\n\ndata: 1\n\n', [4], { scan: false }, 10)
    expect(unread.output.toString()).toBe('data: 0123456789abcdef\n\ndata: 1\n\n')
    expect(unread.events).toEqual(['data: 1\n\n'])
    const truncated = frame('data: 0123456789\ndata', [4], {}, 8)
    expect(truncated.sink.oversize[0]!.scanner!.text).toBe('0123456789\n')
    expect(truncated.sink.oversize[0]!.scanner!.ended).toBe(1)
  })

  const bigLine = fc
    .tuple(fc.constantFrom('data: ', 'data:', 'data:  '), fc.string({ minLength: 10, maxLength: 40 }))
    .map(([p, s]) => p + s.replace(/[\r\n]/g, ''))
  const bigStream = fc
    .array(fc.tuple(fc.array(fc.tuple(fc.oneof(line, bigLine), eol), { minLength: 1, maxLength: 5 }), eol), {
      maxLength: 6,
    })
    .map((events) => events.map(([lines, end]) => lines.map(([l, e]) => l + e).join('') + end).join(''))

  it('bytes identical, and every event read whole or scanned as eventsource-parser reads it, in any chunking', () => {
    fc.assert(
      fc.property(bigStream, sizes, fc.integer({ min: 8, max: 48 }), (text, cuts, max) => {
        const { sink, output, framer } = frame(text, cuts, {}, max)
        expect(output.toString()).toBe(text)
        expect(framer.stopped).toBe(false)
        expect(sink.stops).toEqual([])
        const ours: { event?: string | undefined; data: string }[] = []
        for (const item of sink.order) {
          if (item.kind === 'event') {
            expect(item.raw.length).toBeLessThanOrEqual(max)
            const e = decode(item.raw)
            if (e) ours.push({ event: e.name, data: e.data })
          } else {
            expect(item.scanner!.ended).toBe(1)
            ours.push({ data: item.scanner!.text })
          }
        }
        // A scanner cannot tell an event without data lines from one with an empty payload.
        const nonEmpty = <T extends { data: string }>(list: T[]) => list.filter((e) => e.data !== '')
        expect(nonEmpty(ours).map((e) => e.data)).toEqual(nonEmpty(oracle(text)).map((e) => e.data))
        for (const o of sink.order) if (o.kind === 'oversized') expect(o.head.length).toBeGreaterThan(max)
      }),
      { numRuns: 500 },
    )
  })
})

/**
 * Counts the bytes the framer copies (Buffer.concat, Buffer.from of bytes) and the bytes its searches
 * pass over (Buffer#indexOf, up to the match) while `run` runs.
 */
function cost(run: () => void): { copied: number; examined: number; searches: number } {
  const { concat, from } = Buffer
  const { indexOf } = Buffer.prototype
  const counts = { copied: 0, examined: 0, searches: 0 }
  Buffer.concat = function (list: readonly Uint8Array[], total?: number) {
    const out = concat.call(Buffer, list, total)
    counts.copied += out.length
    return out
  } as typeof Buffer.concat
  Buffer.from = function (this: unknown, ...args: unknown[]) {
    const out = (from as (...a: unknown[]) => Buffer).apply(Buffer, args)
    if (args[0] instanceof Uint8Array) counts.copied += out.length
    return out
  } as typeof Buffer.from
  Buffer.prototype.indexOf = function (this: Buffer, value: unknown, offset?: unknown) {
    const at = (indexOf as (...a: unknown[]) => number).call(this, value, offset)
    const start = typeof offset === 'number' ? offset : 0
    counts.examined += (at === -1 ? this.length : at + 1) - start
    counts.searches++
    return at
  } as typeof Buffer.prototype.indexOf
  try {
    run()
  } finally {
    Buffer.concat = concat
    Buffer.from = from
    Buffer.prototype.indexOf = indexOf
  }
  return counts
}

describe('framing cost is linear in the bytes, whatever the chunking and line ends', () => {
  const MiB2 = 2 * 1024 * 1024
  const big = (eol: string, lineBytes: number) => {
    const lines: string[] = []
    let bytes = 0
    for (let i = 0; bytes < MiB2; i++) {
      const l = `data: ${String(i).padStart(8, '0')}${'x'.repeat(Math.max(0, lineBytes - 14))}${eol}`
      lines.push(l)
      bytes += l.length
    }
    return Buffer.from(`event: message_delta${eol}${lines.join('')}${eol}data: after${eol}${eol}`)
  }
  const chunks = (bytes: Buffer, size: number) => {
    const out: Buffer[] = []
    for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size))
    return out
  }

  for (const [label, eol] of [
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ] as const) {
    for (const [shape, lineBytes] of [
      ['one data line', MiB2],
      ['100-byte data lines', 100],
    ] as const) {
      for (const max of [4 * MiB2, 64 * 1024]) {
        const what = max > MiB2 ? 'held whole' : 'over maxEventBytes'
        it(`a 2 MiB event in 150-byte chunks, ${label}, ${shape}, ${what}: bytes copied and searched ≤ 3× input`, () => {
          const input = big(eol, lineBytes)
          const pieces = chunks(input, 150)
          const framer = new SseFramer(max)
          const sink = new Sink()
          const out: Buffer[] = []
          const counts = cost(() => {
            for (const piece of pieces) out.push(...framer.push(piece, sink))
            out.push(...framer.end(sink))
          })
          expect(Buffer.concat(out).equals(input)).toBe(true)
          expect(sink.events.at(-1)!.raw).toBe(`data: after${eol}${eol}`)
          expect(sink.oversize).toHaveLength(max > MiB2 ? 0 : 1)
          expect(counts.copied).toBeLessThanOrEqual(3 * input.length)
          expect(counts.examined).toBeLessThanOrEqual(3 * input.length)
          // A constant number of searches per chunk and per line, never per byte held.
          const lines = input.length / Math.min(lineBytes, input.length)
          expect(counts.searches).toBeLessThanOrEqual(4 * (pieces.length + lines))
        })
      }
    }
  }

  it('a named event that passes costs no copy, in 64-byte chunks, CRLF', () => {
    const input = big('\r\n', 100)
    const framer = new SseFramer(1 << 20)
    const sink = new Sink({ passes: (head) => head.startsWith('event: message_delta') })
    const pieces = chunks(input, 64)
    const out: Buffer[] = []
    const counts = cost(() => {
      for (const piece of pieces) out.push(...framer.push(piece, sink))
    })
    expect(Buffer.concat(out).equals(input)).toBe(true)
    expect(counts.copied).toBeLessThan(1024)
    expect(counts.examined).toBeLessThanOrEqual(3 * input.length)
  })
})

describe('chunks of whole events the sink skips', () => {
  const ping = 'event: ping\ndata: {}\n\n'
  const delta = 'event: message_delta\ndata: {"usage":{}}\n\n'

  it('leave as the same Buffer, unframed; the next chunk is framed as usual', () => {
    const framer = new SseFramer(1 << 20)
    const sink = new Sink({ skips: (chunk) => !chunk.includes('message_delta') })
    // Chunks of many events are the ones worth a test: small ones are framed straight away.
    const whole = Buffer.from(ping.repeat(30))
    const out = framer.push(whole, sink)
    expect(out).toEqual([whole])
    expect(out[0]).toBe(whole)
    expect(sink.events).toEqual([])
    framer.push(Buffer.from(ping + delta), sink)
    expect(sink.events.map((e) => e.raw)).toEqual([ping, delta])
    expect(sink.events[1]!.at).toBe(whole.length + ping.length)
  })

  it('are asked about only at an event boundary; the event a chunk ends in is framed as usual', () => {
    const sink = new Sink({ skips: () => true })
    const framer = new SseFramer(1 << 20)
    const first = Buffer.from(ping.repeat(30) + 'event: pi')
    expect(Buffer.concat(framer.push(first, sink)).toString()).toBe(ping.repeat(30))
    expect(Buffer.concat(framer.push(Buffer.from('ng\ndata: {}\n\n'), sink)).toString()).toBe(ping)
    // Asked once, for the chunk that started at a boundary; the ping it ended in was held and framed.
    expect(sink.skipped).toEqual([first.toString()])
    expect(sink.events.map((e) => e.raw)).toEqual([ping])
    expect(sink.events[0]!.at).toBe(30 * ping.length)
  })

  it('leave unframed up to the event the sink may read, which is framed; the search goes on after it', () => {
    const framer = new SseFramer(1 << 20)
    const sink = new Sink({ readsFrom: (rest) => rest.indexOf('message_delta') })
    const text = ping.repeat(20) + delta + ping.repeat(20) + delta + ping.repeat(5)
    const chunk = Buffer.from(text)
    const out = framer.push(chunk, sink)
    expect(Buffer.concat(out).toString()).toBe(text)
    // Only the two deltas were cut out and handed over, each at its place in the stream.
    expect(sink.events).toEqual([
      { raw: delta, at: 20 * ping.length },
      { raw: delta, at: 40 * ping.length + delta.length },
    ])
    // Asked three times: from the start, after each delta.
    expect(sink.skipped).toHaveLength(3)
    // Nothing was copied: every piece out is a view of the chunk.
    for (const piece of out) expect(piece.buffer).toBe(chunk.buffer)
  })

  it('a sink that cannot tell yet is asked again after the next event', () => {
    const framer = new SseFramer(1 << 20)
    let asked = 0
    const sink = new Sink({ readsFrom: (rest) => (asked++ === 0 ? -2 : rest.indexOf('message_delta')) })
    const text = ping + ping.repeat(40) + delta + ping.repeat(5)
    expect(Buffer.concat(framer.push(Buffer.from(text), sink)).toString()).toBe(text)
    // The first ping was framed while the sink could not tell; then only the delta.
    expect(sink.events.map((e) => e.raw)).toEqual([ping, delta])
  })

  it('a needle inside an event that is not read only makes that event framed', () => {
    const framer = new SseFramer(1 << 20)
    const text = 'event: content_block_delta\ndata: {"text":"message_delta"}\n\n'
    const sink = new Sink({ readsFrom: (rest) => rest.indexOf('message_delta') })
    const input = ping.repeat(30) + text + ping.repeat(30)
    expect(Buffer.concat(framer.push(Buffer.from(input), sink)).toString()).toBe(input)
    expect(sink.events.map((e) => e.raw)).toEqual([text])
  })

  it('any chunking with a search: bytes out are bytes in, and every event the sink reads is framed', () => {
    const big = fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 5 })
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(ping, ping, ping, delta, '\n'), { maxLength: 80 }),
        fc.oneof(sizes, big),
        (events, cuts) => {
          const text = events.join('')
          const { output, sink } = frame(text, cuts, { readsFrom: (rest) => rest.indexOf('message_delta') })
          expect(output.toString()).toBe(text)
          expect(sink.events.filter((e) => e.raw === delta)).toHaveLength(events.filter((e) => e === delta).length)
          for (const e of sink.events) expect(text.slice(e.at, e.at + e.raw.length)).toBe(e.raw)
        },
      ),
    )
  })

  it('any line ends and chunking with a search: a chunk ending in a blank line is skipped whatever its line ends', () => {
    const big = fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 5 })
    const ends = ['\n', '\r\n', '\r']
    const pings = ends.map((e) => `event: ping${e}data: {}${e}${e}`)
    const deltas = ends.map((e) => `event: message_delta${e}data: {"usage":{}}${e}${e}`)
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...pings, ...pings, ...deltas, '\n', '\r\n'), { maxLength: 80 }),
        fc.oneof(sizes, big),
        (events, cuts) => {
          const text = events.join('')
          // The needle is in a delta's data line: a chunk that ends after its first line holds none.
          const { output, sink } = frame(text, cuts, { readsFrom: (rest) => rest.indexOf('usage') })
          expect(output.toString()).toBe(text)
          const framed = sink.events.filter((e) => e.raw.includes('usage'))
          expect(framed).toHaveLength(events.filter((e) => deltas.includes(e)).length)
          for (const e of framed) expect(e.raw.startsWith('event: message_delta')).toBe(true)
          for (const e of sink.events) expect(text.slice(e.at, e.at + e.raw.length)).toBe(e.raw)
        },
      ),
    )
  })

  it('a chunk that ends in a line end but not a blank line is not skipped whole, whatever its line ends', () => {
    for (const end of ['\n', '\r\n']) {
      const framer = new SseFramer(1 << 20)
      const sink = new Sink({ readsFrom: (rest) => rest.indexOf('usage') })
      const head = `event: ping${end}data: {}${end}${end}`.repeat(30) + `event: message_delta${end}`
      const tail = `data: {"usage":{}}${end}${end}`
      const out = [...framer.push(Buffer.from(head), sink), ...framer.push(Buffer.from(tail), sink)]
      expect(Buffer.concat(out).toString()).toBe(head + tail)
      expect(sink.events.map((e) => e.raw)).toContain(`event: message_delta${end}${tail}`)
    }
  })

  it('a chunk of CRLF events that ends in LF LF is skipped whole; the next chunk is framed from a boundary', () => {
    const framer = new SseFramer(1 << 20)
    const sink = new Sink({ readsFrom: (rest) => rest.indexOf('message_delta') })
    const whole = Buffer.from('event: ping\r\ndata: {}\r\n\r\n'.repeat(30) + 'event: ping\r\ndata: {}\r\n\n')
    const out = framer.push(whole, sink)
    expect(out).toHaveLength(1)
    expect(out[0]).toBe(whole)
    expect(sink.events).toEqual([])
    const next = 'event: message_delta\r\ndata: {"usage":{}}\r\n\r\n'
    expect(Buffer.concat(framer.push(Buffer.from(next), sink)).toString()).toBe(next)
    expect(sink.events).toEqual([{ raw: next, at: whole.length }])
  })

  it('any chunking: bytes out are bytes in, and every event the sink reads is framed', () => {
    const big = fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 5 })
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(ping, ping, ping, delta), { maxLength: 80 }),
        fc.oneof(sizes, big),
        (events, cuts) => {
          const text = events.join('')
          const { output, sink } = frame(text, cuts, { skips: (chunk) => !chunk.includes('message_delta') })
          expect(output.toString()).toBe(text)
          expect(sink.events.filter((e) => e.raw === delta)).toHaveLength(events.filter((e) => e === delta).length)
          // Events are framed whole and in order: each framed one stands in the text where the framer said.
          for (const e of sink.events) expect(text.slice(e.at, e.at + e.raw.length)).toBe(e.raw)
        },
      ),
    )
  })
})
