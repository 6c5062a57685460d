import fc from 'fast-check'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { describe, expect, it } from 'vitest'
import { SseFramer, findEventEnd, matchEventName, NO_EVENT_LINE, parseEvent, replaceData } from './sse.js'

/** Cuts `text` with the framer fed in `sizes` chunks; returns each event's raw text and the output bytes. */
function frame(text: string | Buffer, sizes: number[] = [Number.MAX_SAFE_INTEGER]) {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text)
  const framer = new SseFramer(1 << 20)
  const events: Buffer[] = []
  const visit = (buf: Buffer, start: number, end: number) => {
    events.push(Buffer.from(buf.subarray(start, end)))
    return undefined
  }
  const out: Buffer[] = []
  for (let at = 0, n = 0; at < bytes.length; n++) {
    const size = Math.max(1, sizes[n % sizes.length]!)
    out.push(...framer.push(bytes.subarray(at, at + size), visit))
    at += size
  }
  out.push(...framer.end(visit))
  return { events, output: Buffer.concat(out) }
}

describe("SSE framing keeps each event's raw bytes", () => {
  it('cuts LF events at the blank line, terminator included', () => {
    const { events } = frame('event: a\ndata: 1\n\nevent: b\ndata: 2\n\n')
    expect(events.map(String)).toEqual(['event: a\ndata: 1\n\n', 'event: b\ndata: 2\n\n'])
  })

  it('cuts CRLF and CR events', () => {
    expect(frame('data: 1\r\n\r\ndata: 2\r\n\r\n').events.map(String)).toEqual(['data: 1\r\n\r\n', 'data: 2\r\n\r\n'])
    expect(frame('data: 1\r\rdata: 2\r\r').events.map(String)).toEqual(['data: 1\r\r', 'data: 2\r\r'])
  })

  it('a CR at a chunk end waits for a possible LF', () => {
    const buf = Buffer.from('data: 1\r')
    expect(findEventEnd(buf, 0, true)).toBe(-1)
    expect(findEventEnd(Buffer.from('data: 1\r\n\r\n'), 0, true)).toBe(11)
  })

  it('hands back a chunk of whole events as the same Buffer', () => {
    const framer = new SseFramer(1 << 20)
    const chunk = Buffer.from('event: ping\ndata: {}\n\nevent: ping\ndata: {}\n\n')
    const out = framer.push(chunk, () => undefined)
    expect(out).toHaveLength(1)
    expect(out[0]).toBe(chunk)
  })

  it('holds back a partial event and sends it whole with the chunk that completes it', () => {
    const framer = new SseFramer(1 << 20)
    expect(framer.push(Buffer.from('data: 1\n\ndata: '), () => undefined).map(String)).toEqual(['data: 1\n\n'])
    expect(framer.pending()?.toString()).toBe('data: ')
    expect(framer.push(Buffer.from('2\n\n'), () => undefined).map(String)).toEqual(['data: 2\n\n'])
  })

  it('a last event without its blank line is still an event at the end (PEERS row 52)', () => {
    expect(frame('data: 1\n\ndata: 2\n').events.map(String)).toEqual(['data: 1\n\n', 'data: 2\n'])
  })

  it('an event over the size bound switches to passthrough and loses no byte', () => {
    const framer = new SseFramer(8)
    const out = framer.push(Buffer.from('data: 0123456789'), () => undefined)
    expect(framer.stopped).toBe(true)
    expect(Buffer.concat(out).toString()).toBe('data: 0123456789')
    expect(framer.push(Buffer.from('\n\n'), () => undefined).map(String)).toEqual(['\n\n'])
  })

  it('keeps a multi-byte character split across chunks intact', () => {
    const text = 'data: {"text":"héllo 🌍"}\n\n'
    for (let cut = 1; cut < Buffer.byteLength(text); cut++) {
      const { events, output } = frame(text, [cut])
      expect(output.toString()).toBe(text)
      expect(events.map(String)).toEqual([text])
    }
  })
})

describe('reading the fields of one event', () => {
  it('reads event name and data, skipping comments and unknown fields', () => {
    const buf = Buffer.from(': keep-alive\nid: 7\nevent: message_delta\ndata: {"a":1}\n\n')
    const event = parseEvent(buf, 0, buf.length)!
    expect(event.name).toBe('message_delta')
    expect(event.data).toBe('{"a":1}')
    expect(buf.toString('utf8', event.dataStart, event.dataEnd)).toBe('{"a":1}')
  })

  it('joins multi-line data with LF and replaces all of its lines', () => {
    const buf = Buffer.from('event: x\ndata: {"a":\ndata: 1}\n\n')
    const event = parseEvent(buf, 0, buf.length)!
    expect(event.data).toBe('{"a":\n1}')
    expect(event.multiline).toBe(true)
    expect(replaceData(buf, 0, buf.length, event, '{"a":2}').toString()).toBe('event: x\ndata: {"a":2}\n\n')
  })

  it('replaces only the data value, keeping line ends and other lines', () => {
    const buf = Buffer.from('event: x\r\ndata:{"a":1}\r\nid: 3\r\n\r\n')
    const event = parseEvent(buf, 0, buf.length)!
    expect(replaceData(buf, 0, buf.length, event, '{"a":2}').toString()).toBe(
      'event: x\r\ndata:{"a":2}\r\nid: 3\r\n\r\n',
    )
  })

  it('matches event names on bytes, whole names only', () => {
    const names = [Buffer.from('message_start'), Buffer.from('message_delta')]
    const at = (text: string) => matchEventName(Buffer.from(text), 0, text.length, names)
    expect(at('event: message_delta\ndata: {}\n\n')).toBe(1)
    expect(at('event:message_start\r\ndata: {}\r\n\r\n')).toBe(0)
    expect(at('event: message_deltas\ndata: {}\n\n')).toBe(-1)
    expect(at('event: ping\ndata: {}\n\n')).toBe(-1)
    expect(at('data: {}\n\n')).toBe(NO_EVENT_LINE)
  })
})

describe('framing agrees with eventsource-parser on any stream and any chunking', () => {
  const line = fc.oneof(
    fc.constantFrom(
      'event: message_delta',
      'event: ping',
      'event:x',
      ': comment',
      'id: 1',
      'retry: 10',
      'data',
      'data:',
    ),
    fc.string({ maxLength: 12 }).map((s) => `data: ${s.replace(/[\r\n]/g, '')}`),
    fc.constantFrom('data: {"usage":{"output_tokens":5}}', 'data: é🌍', 'data:  two spaces'),
  )
  const eol = fc.constantFrom('\n', '\r\n', '\r')
  const stream = fc
    .array(fc.tuple(fc.array(fc.tuple(line, eol), { minLength: 1, maxLength: 4 }), eol), { maxLength: 6 })
    .map((events) => events.map(([lines, end]) => lines.map(([l, e]) => l + e).join('') + end).join(''))

  it('same events (type and data), byte-exact output', () => {
    fc.assert(
      fc.property(stream, fc.array(fc.integer({ min: 1, max: 16 }), { minLength: 1, maxLength: 5 }), (text, sizes) => {
        const oracle: EventSourceMessage[] = []
        const parser = createParser({ onEvent: (e) => oracle.push(e) })
        // At the end of the stream usagewire reads a last event that lacks its blank line (a truncated
        // stream still yields its usage); the oracle sees that blank line added.
        parser.feed(`${text}\n\n`)
        const { events, output } = frame(text, sizes)
        expect(output.toString()).toBe(text)
        const ours = events
          .map((raw) => parseEvent(raw, 0, raw.length))
          .filter((e) => e !== undefined)
          .map((e) => ({ event: e.name, data: e.data }))
        expect(ours).toEqual(oracle.map((e) => ({ event: e.event, data: e.data })))
      }),
      { numRuns: 300 },
    )
  })
})

describe('events that may leave before their end', () => {
  it('a partial event the visitor would not read leaves at once, and framing resumes after its end', () => {
    const seen: string[] = []
    const framer = new SseFramer(
      16,
      undefined,
      (buf, start) => buf.toString('latin1', start, start + 11) === 'event: ping',
    )
    const visit = (buf: Buffer, start: number, end: number) => {
      seen.push(buf.toString('utf8', start, end))
      return undefined
    }
    const first = Buffer.from('event: ping\ndata: {"long":"')
    expect(framer.push(first, visit)).toEqual([first]) // the same Buffer, nothing held
    expect(framer.pending()).toBeUndefined()
    const middle = Buffer.from('x'.repeat(100)) // past maxEventBytes, yet nothing stops: it is never held
    expect(framer.push(middle, visit)).toEqual([middle])
    const last = Buffer.from('"}\n')
    expect(framer.push(last, visit)).toEqual([last])
    const next = Buffer.from('\nevent: a\ndata: 1\n\n')
    expect(Buffer.concat(framer.push(next, visit)).toString()).toBe(next.toString())
    expect(framer.stopped).toBe(false)
    // The blank line split across chunks ended the passing event; the next one was visited whole.
    expect(seen).toEqual(['event: a\ndata: 1\n\n'])
  })

  it('line ends turning to CR inside an event already sent stop the framer, losing no byte', () => {
    const stops: string[] = []
    const framer = new SseFramer(
      1 << 20,
      (reason) => stops.push(reason),
      () => true,
    )
    const out = [
      ...framer.push(Buffer.from('event: ping\ndata: x'), () => undefined),
      ...framer.push(Buffer.from('\r\r'), () => undefined),
    ]
    expect(Buffer.concat(out).toString()).toBe('event: ping\ndata: x\r\r')
    expect(stops[0]).toMatch(/line ends changed/)
  })
})
