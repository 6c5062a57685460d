import fc from 'fast-check'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createProcessor } from '../processor.js'
import { dialectById } from './registry.js'
import { TextPrint, type TextPrints } from './text.js'
import type { JsonObject, TextSink } from './types.js'

/**
 * Text templates (docs/architecture.md#text-templates): the text collected for a sidecar's join, or an
 * aborted stream's estimate, is the same whether an event's text came by its template or by parsing it.
 */

const ROUTES = {
  'anthropic-messages': '/v1/messages',
  'openai-chat': '/v1/chat/completions',
  'openai-responses': '/v1/responses',
} as const
type Dialect = keyof typeof ROUTES

/** What the dialect's `text` gives for each event, parsed one by one: the reference. */
function reference(dialect: Dialect, events: object[]): { all: string; answer: string } {
  const text = dialectById(dialect)!.text!
  const out = { all: '', answer: '' }
  const sink: TextSink = {
    add(piece, reasoning) {
      out.all += piece
      if (!reasoning) out.answer += piece
    },
  }
  for (const event of events) text(JSON.parse(JSON.stringify(event)) as JsonObject, sink)
  return out
}

function printOf(text: string): TextPrint {
  const print = new TextPrint()
  print.add(text)
  return print
}

function collected(dialect: Dialect, body: Buffer, cuts: number[]): { all: string; answer: string }
function collected(dialect: Dialect, body: Buffer, cuts: number[], mode: 'print'): TextPrints
function collected(
  dialect: Dialect,
  body: Buffer,
  cuts: number[],
  mode: true | 'print' = true,
): { all: string; answer: string } | TextPrints {
  const processor = createProcessor({
    path: ROUTES[dialect],
    contentType: 'text/event-stream',
    collectText: mode,
    readOnly: true,
  })
  let at = 0
  for (const cut of [...cuts.filter((c) => c < body.length)].sort((a, b) => a - b)) {
    processor.push(body.subarray(at, cut))
    at = cut
  }
  processor.push(body.subarray(at))
  processor.end()
  if (mode === 'print') return processor.streamedPrints!
  return { all: processor.streamedText, answer: processor.streamedAnswer }
}

const sse = (events: Array<{ name?: string; data: object }>, end = '\n') =>
  Buffer.from(
    events
      .map(
        ({ name, data }) =>
          `${name === undefined ? '' : `event: ${name}${end}`}data: ${JSON.stringify(data)}${end}${end}`,
      )
      .join(''),
  )

// Text with what JSON escapes, characters of every UTF-8 length, and empty strings.
const piece = fc.oneof(
  fc.string({
    unit: fc.constantFrom('a', ' ', '"', '\\', '\n', '\t', '\u0001', 'é', '€', '😀', '/', '}'),
    maxLength: 12,
  }),
  fc.constant(''),
)

const anthropicEvent = fc.oneof(
  {
    weight: 6,
    arbitrary: piece.map((text) => ({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } })),
  },
  {
    weight: 2,
    arbitrary: piece.map((thinking) => ({
      type: 'content_block_delta',
      index: 0,
      delta: { type: 'thinking_delta', thinking },
    })),
  },
  {
    weight: 2,
    arbitrary: piece.map((partial_json) => ({
      type: 'content_block_delta',
      index: 1,
      delta: { type: 'input_json_delta', partial_json },
    })),
  },
  {
    weight: 1,
    arbitrary: fc.constant({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
  },
  { weight: 1, arbitrary: fc.constant({ type: 'content_block_stop', index: 0 }) },
  { weight: 1, arbitrary: fc.constant({ type: 'ping' }) },
  // Both members: `text` gives the first only; a template must not be learnt from it.
  {
    weight: 1,
    arbitrary: fc
      .tuple(piece, piece)
      .map(([text, partial_json]) => ({ type: 'content_block_delta', index: 0, delta: { text, partial_json } })),
  },
)

const chatEvent = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(piece, piece).map(([content, obfuscation]) => ({
      id: 'c',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { content }, finish_reason: null }],
      obfuscation,
    })),
  },
  {
    weight: 2,
    arbitrary: piece.map((reasoning_content) => ({
      id: 'c',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { reasoning_content } }],
    })),
  },
  {
    weight: 2,
    arbitrary: piece.map((args) => ({
      id: 'c',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: args } }] } }],
    })),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(piece, piece).map(([a, b]) => ({
      id: 'c',
      object: 'chat.completion.chunk',
      choices: [
        { index: 0, delta: { content: a } },
        { index: 1, delta: { content: b } },
      ],
    })),
  },
  // `refusal` is no text member: an event with one is parsed, not templated.
  {
    weight: 1,
    arbitrary: piece.map((refusal) => ({
      id: 'c',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { content: 'x', refusal } }],
    })),
  },
)

const responsesEvent = fc.oneof(
  {
    weight: 4,
    arbitrary: piece.map((delta) => ({
      type: 'response.output_text.delta',
      item_id: 'm',
      output_index: 0,
      content_index: 0,
      delta,
    })),
  },
  {
    weight: 2,
    arbitrary: piece.map((delta) => ({ type: 'response.reasoning_summary_text.delta', item_id: 'r', delta })),
  },
  { weight: 1, arbitrary: fc.constant({ type: 'response.output_text.done', text: 'whole' }) },
)

const cuts = fc.array(fc.nat({ max: 4000 }), { maxLength: 8 })

describe('text templates', () => {
  afterEach(() => vi.restoreAllMocks())

  for (const [dialect, events, named] of [
    ['anthropic-messages', anthropicEvent, true],
    ['openai-chat', chatEvent, false],
    ['openai-responses', responsesEvent, true],
  ] as const) {
    it(`${dialect}: the text collected is what parsing each event gives, in any chunking and line ends`, () => {
      fc.assert(
        fc.property(
          fc.array(fc.oneof(events, fc.constant(undefined)), { minLength: 1, maxLength: 60 }),
          fc.constantFrom('\n', '\r\n', '\r'),
          cuts,
          (list, end, at) => {
            // Runs of one shape (templates pass them), broken by others.
            let stream = list.flatMap((e, i) => (e === undefined ? [] : Array<object>(1 + (i % 4)).fill(e)))
            // Responses numbers its events: a count, free in its templates (of one to four digits, and 0).
            if (dialect === 'openai-responses')
              stream = stream.map((e, i) => ({ ...e, sequence_number: i === 0 ? 0 : (i * 997) % 10_000 }))
            if (stream.length === 0) return
            const body = sse(
              stream.map((data) => ({ name: named ? String((data as { type?: string }).type) : undefined, data })),
              end,
            )
            const want = reference(dialect, stream)
            expect(collected(dialect, body, at)).toEqual(want)
            // Its prints, kept without the text, are the text's.
            const prints = collected(dialect, body, at, 'print')
            expect(prints.all.same(printOf(want.all))).toBe(true)
            expect(prints.answer.same(printOf(want.answer))).toBe(true)
            expect(prints.all.length).toBe(want.all.replace(/\s+/g, '').length)
          },
        ),
        { numRuns: 300 },
      )
    })
  }

  it('a run of events of one shape is parsed once, not once per event', () => {
    const deltas = Array.from({ length: 200 }, (_, i) => ({
      name: 'content_block_delta',
      data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: `word ${i} "q" \\ é😀` } },
    }))
    const body = sse([
      { name: 'message_start', data: { type: 'message_start', message: { usage: { input_tokens: 3 } } } },
      ...deltas,
    ])
    const parse = vi.spyOn(JSON, 'parse')
    const got = collected('anthropic-messages', body, [])
    // The first event settles the dialect (parsed twice: its text, its usage), the first delta teaches the
    // template; the strings with a backslash are parsed alone (a string, not an event).
    const events = parse.mock.calls.filter(([text]) => String(text).startsWith('{')).length
    expect(events).toBeLessThanOrEqual(3)
    expect(got.all).toBe(deltas.map((d) => d.data.delta.text).join(''))
  })

  it('a template gives only what `text` gave, each string in its place, for a text that skips empty strings', () => {
    // A dialect whose `text` gives `b` only when it is not empty, and `a` before it: the first event (`b`
    // empty, not given) must not teach a template that leaves `b` out of the next.
    const chat = dialectById('openai-chat')!
    const spec = {
      ...chat,
      recognizeEvent: () => true,
      textKeys: new Set(['a', 'b']),
      text(json: JsonObject, into: TextSink) {
        if (typeof json.a === 'string') into.add(json.a)
        if (typeof json.b === 'string' && json.b !== '') into.add(json.b, true)
      },
    }
    const events = [
      { a: 'x', b: '' },
      { a: 'y', b: 'z' },
      { a: 'w', b: 'v' },
      { a: 'u', b: '' },
      { a: 'x', b: 'x' },
      { a: 't', b: 's' },
    ]
    const processor = createProcessor({
      dialect: spec,
      contentType: 'text/event-stream',
      collectText: true,
      readOnly: true,
    })
    processor.push(sse(events.map((data) => ({ data }))))
    processor.end()
    expect(processor.streamedText).toBe('xyzwvuxxts')
    expect(processor.streamedAnswer).toBe('xywuxt')
  })

  it('Responses events, each with its own sequence number, share one template', () => {
    const deltas = Array.from({ length: 200 }, (_, i) => ({
      name: 'response.output_text.delta',
      data: {
        type: 'response.output_text.delta',
        sequence_number: i + 3,
        item_id: 'msg_1',
        output_index: 0,
        content_index: 0,
        delta: `word ${i} `,
        obfuscation: 'x'.repeat(i % 9),
      },
    }))
    const body = sse([
      { name: 'response.created', data: { type: 'response.created', sequence_number: 0, response: {} } },
      ...deltas,
    ])
    const parse = vi.spyOn(JSON, 'parse')
    const got = collected('openai-responses', body, [])
    expect(parse.mock.calls.filter(([text]) => String(text).startsWith('{')).length).toBeLessThanOrEqual(3)
    expect(got.all).toBe(deltas.map((d) => d.data.delta).join(''))
  })

  it('an event whose text was empty teaches no template: the next one is still read', () => {
    const body = sse(
      ['', 'a', 'b', ''].map((content) => ({
        data: { object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] },
      })),
    )
    expect(collected('openai-chat', body, []).all).toBe('ab')
  })
})

describe('TextPrint', () => {
  // Every character `\s` matches, and some it does not (zero-width space, the next-line control, a
  // letter), in texts that differ only in their white space or not at all.
  const unit = fc.constantFrom(
    ...' \t\n\v\f\r\u00a0\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000\ufeff\u200b\u0085ab{}"é😀'.split(''),
  )
  const text = fc.string({ unit, maxLength: 30 })
  const strip = (s: string) => s.replace(/\s+/g, '')

  it('two texts have the same print when they are the same with /\\s+/g taken out, and only then', () => {
    fc.assert(
      fc.property(text, text, (a, b) => {
        expect(printOf(a).same(printOf(b))).toBe(strip(a) === strip(b))
        expect(printOf(a).length).toBe(strip(a).length)
      }),
      { numRuns: 3000 },
    )
    // Pairs that are the same text, their white space moved.
    fc.assert(
      fc.property(text, fc.array(fc.nat(), { maxLength: 5 }), (a, at) => {
        let b = strip(a)
        for (const i of at) b = `${b.slice(0, i % (b.length + 1))} \u2028${b.slice(i % (b.length + 1))}`
        expect(printOf(a).same(printOf(b))).toBe(true)
        expect(printOf(a).same(printOf(`${b}x`))).toBe(false)
      }),
    )
  })

  it('is the same added whole or in pieces, from strings or from ASCII bytes', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 12 }), { maxLength: 8 }), (pieces) => {
        const whole = printOf(pieces.join(''))
        const inPieces = new TextPrint()
        const fromBytes = new TextPrint()
        for (const piece of pieces) {
          inPieces.add(piece)
          const bytes = Buffer.from(`"${piece}"`)
          const plain = /^[\x00-\x7f]*$/.test(piece) && !piece.includes('\\')
          const before = fromBytes.copy()
          expect(fromBytes.addAscii(bytes, 1, bytes.length - 1)).toBe(plain)
          if (!plain) {
            // Nothing was added: the piece goes in as a string.
            expect(fromBytes.same(before)).toBe(true)
            fromBytes.add(piece)
          }
        }
        expect(inPieces.same(whole)).toBe(true)
        expect(fromBytes.same(whole)).toBe(true)
        // The head: the first code units but white space, however the text came.
        expect(whole.head).toBe(pieces.join('').replace(/\s+/g, '').slice(0, TextPrint.HEAD))
        expect(inPieces.head).toBe(whole.head)
        expect(fromBytes.head).toBe(whole.head)
      }),
    )
  })

  it('a text still growing may become another only while it is a start of it, white space aside', () => {
    const whole = printOf('Hello, world! '.repeat(5))
    expect(printOf('Hel lo,').mayBecome(whole)).toBe(true)
    expect(printOf('').mayBecome(whole)).toBe(true)
    expect(printOf('Help').mayBecome(whole)).toBe(false)
    expect(printOf('Hello, world! '.repeat(6)).mayBecome(whole)).toBe(false) // longer already
    expect(whole.mayBecome(whole)).toBe(true)
  })

  it('tells apart texts of the same length that differ in one character', () => {
    const base = 'the quick brown fox jumps over the lazy dog '.repeat(20)
    const print = printOf(base)
    for (let i = 0; i < base.length; i++) {
      if (base[i] === ' ') continue
      expect(printOf(`${base.slice(0, i)}#${base.slice(i + 1)}`).same(print)).toBe(false)
    }
  })
})

describe('text runs', () => {
  afterEach(() => vi.restoreAllMocks())

  it('an event that carries usage is read, never passed by the text template learnt from its likes', () => {
    // Gemini: every chunk carries the text and the usage so far; each is read for its usage.
    const chunks = Array.from({ length: 100 }, (_, i) => ({
      data: {
        candidates: [{ content: { parts: [{ text: `w${i} ` }], role: 'model' }, index: 0 }],
        usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 3, totalTokenCount: 10 },
        modelVersion: 'gemini-2.5-flash',
      },
    }))
    const processor = createProcessor({
      path: '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse',
      contentType: 'text/event-stream',
      collectText: true,
      readOnly: true,
    })
    const parse = vi.spyOn(JSON, 'parse')
    processor.push(sse(chunks))
    processor.end()
    expect(processor.streamedText).toBe(chunks.map((c) => c.data.candidates[0]!.content.parts[0]!.text).join(''))
    expect(parse.mock.calls.filter(([t]) => String(t).startsWith('{')).length).toBeGreaterThanOrEqual(100)
  })
})
