import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { MAX_WINDOW, SIMD_FROM_BYTES, useSimdKernel } from '../framing/simd.js'
import { viewOf } from '../framing/words.js'
import { collected } from '../node/test-gc.js'
import { EventTemplate, stringEnd, stringEndByWords } from './template.js'

const FREE = new Set(['content', 'obfuscation'])

const chunk = (content: unknown, obfuscation: unknown = 'aB3', extra: object = {}) => ({
  id: 'chatcmpl-1',
  object: 'chat.completion.chunk',
  created: 1755800000,
  model: 'gpt-4.1',
  choices: [{ index: 0, delta: { content }, logprobs: null, finish_reason: null }],
  usage: null,
  obfuscation,
  ...extra,
})

const event = (json: unknown, end = '\n\n') => Buffer.from(`data: ${JSON.stringify(json)}${end}`)

const learn = (buf: Buffer) => EventTemplate.learn(buf, 0, buf.length, FREE)

/** The JSON of an SSE event of one data line, its free strings emptied. */
function shape(buf: Buffer): unknown {
  const text = buf.toString('utf8')
  const data = text.slice('data:'.length).trim()
  return JSON.parse(data, (key, value: unknown) => (FREE.has(key) && typeof value === 'string' ? '' : value))
}

describe('event templates', () => {
  const template = learn(event(chunk('Hello')))!

  it('match an event of the same bytes with any strings in the free places', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (content, obfuscation) => {
        const buf = event(chunk(content, obfuscation))
        expect(template.match(buf, 0, buf.length)).toBe(buf.length)
        // Anywhere in a chunk, ending where the event ends.
        const padded = Buffer.concat([Buffer.from('x'.repeat(7)), buf, event(chunk('next'))])
        expect(template.match(padded, 7, padded.length)).toBe(7 + buf.length)
      }),
      { numRuns: 500 },
    )
  })

  it('run passes a series of matching events and stops at the first that does not', () => {
    const events = [chunk('a'), chunk('b\\"c'), chunk('d')].map((json) => event(json))
    const other = event(chunk('e', 'x', { usage: { prompt_tokens: 5 } }))
    const buf = Buffer.concat([...events, other, event(chunk('f'))])
    const end = events.reduce((n, e) => n + e.length, 0)
    expect(template.run(buf, 0, buf.length)).toBe(end)
    expect(template.ran).toBe(3)
    expect(template.run(buf, end, buf.length)).toBe(end)
    expect(template.ran).toBe(0)
    // An event cut by the end of the chunk is not passed.
    expect(template.run(buf, 0, end - 1)).toBe(end - events[2]!.length)
    expect(template.ran).toBe(2)
  })

  it('do not match what differs outside the free strings', () => {
    const differs = [
      chunk('a', 'x', { usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } }),
      chunk('a', 'x', { usage: {} }),
      chunk('a', 'x', { error: { message: 'overloaded' } }),
      { ...chunk('a'), choices: [{ index: 0, delta: { content: 'a' }, logprobs: null, finish_reason: 'stop' }] },
      { ...chunk('a'), choices: [{ index: 1, delta: { content: 'a' }, logprobs: null, finish_reason: null }] },
      { ...chunk('a'), choices: [] },
      chunk(null),
      chunk(7),
      chunk({ text: 'a' }),
      chunk('a', null),
      { ...chunk('a'), model: 'gpt-4.2' },
    ]
    for (const json of differs) {
      const buf = event(json)
      expect(template.match(buf, 0, buf.length), JSON.stringify(json)).toBe(-1)
    }
    const crlf = event(chunk('a'), '\r\n\r\n')
    expect(template.match(crlf, 0, crlf.length)).toBe(-1)
  })

  it('do not match a free string that is not a JSON string on one line', () => {
    const base = event(chunk('CONTENT')).toString('latin1')
    for (const bad of ['a\nb', 'a\rb', 'a\tb', 'a\\xb', 'a\\u12g4', 'a\\', 'a\u0000b']) {
      const buf = Buffer.from(base.replace('CONTENT', bad), 'latin1')
      expect(template.match(buf, 0, buf.length), JSON.stringify(bad)).toBe(-1)
    }
    for (const good of ['a\\nb', 'a\\"b', 'a\\\\', '\\u00e9\\uD83D\\ude00', '\u00e9']) {
      const buf = Buffer.from(base.replace('CONTENT', good), 'latin1')
      expect(template.match(buf, 0, buf.length), JSON.stringify(good)).toBe(buf.length)
    }
  })

  it('whatever bytes an event is changed to, one that matches has the same JSON but for its free strings', () => {
    const original = event(chunk('Hello there', 'padding'))
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.constantFrom(...'"\\:,{}[]01an \n\rxu'.split(''))), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.boolean(),
        (edits, insert) => {
          let text = original.toString('latin1')
          for (const [at, char] of edits) {
            const i = at % text.length
            text = insert ? text.slice(0, i) + char + text.slice(i) : text.slice(0, i) + char + text.slice(i + 1)
          }
          const buf = Buffer.from(text, 'latin1')
          if (template.match(buf, 0, buf.length) !== buf.length) return
          expect(shape(buf)).toEqual(shape(original))
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('are learnt only from one data line of valid JSON and its blank line', () => {
    const ok = [event(chunk('a')), event(chunk('a'), '\r\n\r\n'), event(chunk('a'), '\r\r'), event([1, 'x', true])]
    for (const buf of ok) expect(learn(buf), buf.toString()).toBeDefined()
    const crlf = event(chunk('a'), '\r\n\r\n')
    expect(learn(crlf)!.match(crlf, 0, crlf.length)).toBe(crlf.length)
    const not = [
      'event: x\nid: 1\ndata: {"a":1}\n\n',
      'id: 1\ndata: {"a":1}\n\n',
      'event: x\n\n',
      'data: {"a":1}\ndata: {"b":2}\n\n',
      'data: {"a":1}\n',
      'data: {"a":1}\n\n\n',
      'data: {"a":1,}\n\n',
      'data: {"a":01}\n\n',
      'data: {"a":1} x\n\n',
      'data: {"a":"b\\q"}\n\n',
      'data: {"a":tru}\n\n',
      'data: [DONE]\n\n',
      `data: ${'['.repeat(40)}${']'.repeat(40)}\n\n`,
    ]
    for (const text of not) expect(learn(Buffer.from(text)), text).toBeUndefined()
  })

  it('are learnt after an event line too, compared as it is', () => {
    const free = new Set(['text'])
    for (const end of ['\n', '\r\n', '\r']) {
      const named = (name: string, text: string) =>
        Buffer.from(`event: ${name}${end}data: {"text":"${text}"}${end}${end}`)
      const template = EventTemplate.learn(named('delta', 'a'), 0, named('delta', 'a').length, free)!
      expect(template, JSON.stringify(end)).toBeDefined()
      const other = named('delta', 'other text')
      expect(template.match(other, 0, other.length)).toBe(other.length)
      const cuts: number[] = []
      expect(template.matchCuts(other, 0, other.length, cuts)).toBe(other.length)
      expect(template.strings).toBe(1)
      expect(cuts).toEqual([other.indexOf('other'), other.lastIndexOf('"')])
      const renamed = named('delto', 'a')
      expect(template.match(renamed, 0, renamed.length)).toBe(-1)
      // An event line that ends in CR: a match does not end where an event ends in LF-only framing.
      expect(template.lfOnly).toBe(end === '\n')
    }
  })

  it('with counts: free integers, only where an integer is the whole number', () => {
    const counts = new Set(['n'])
    const at = (n: string, text = 'a') => Buffer.from(`data: {"n":${n},"text":"${text}","m":1}\n\n`)
    const template = EventTemplate.learn(at('12'), 0, at('12').length, new Set(['text']), counts)!
    expect(template.strings).toBe(2)
    expect([template.isCount(0), template.isCount(1)]).toEqual([true, false])
    for (const n of ['0', '7', '12', '9007199254740993', '123456789012345678901234567890']) {
      const buf = at(n, 'other')
      const cuts: number[] = []
      expect(template.matchCuts(buf, 0, buf.length, cuts), n).toBe(buf.length)
      expect(buf.toString('latin1', cuts[0], cuts[1])).toBe(n)
      expect(buf.toString('latin1', cuts[2], cuts[3])).toBe('other')
    }
    for (const n of ['-1', '01', '1.5', '1e3', '', '"1"', 'null', '1 ']) {
      const buf = at(n)
      expect(template.match(buf, 0, buf.length), n).toBe(-1)
    }
    // A number with a fraction or an exponent is learnt as it is, not as a count.
    const fraction = EventTemplate.learn(at('1.5'), 0, at('1.5').length, new Set(['text']), counts)!
    expect(fraction.strings).toBe(1)
    expect(fraction.match(at('2.5'), 0, at('2.5').length)).toBe(-1)
    expect(fraction.match(at('1.5', 'b'), 0, at('1.5', 'b').length)).toBe(at('1.5', 'b').length)
    // Runs of events with counts are compared in JavaScript, also where a run is long enough for the kernel.
    const run = Buffer.concat(Array.from({ length: 400 }, (_, i) => at(String(i * 31), 'x'.repeat(i % 7))))
    expect(run.length).toBeGreaterThan(SIMD_FROM_BYTES)
    expect(template.run(run, 0, run.length)).toBe(run.length)
    expect(template.ran).toBe(400)
  })

  it('match by words whatever the lengths of the parts between free strings', () => {
    // Parts of 0–3 bytes (compared byte by byte), 4–7 (two 32-bit words) and 8 or more (doubles, the
    // last one overlapping), at every alignment in the chunk.
    const key = fc.string({ unit: fc.constantFrom(...'abkq_'.split('')), minLength: 1, maxLength: 19 })
    fc.assert(
      fc.property(
        fc.array(fc.tuple(key, fc.oneof(fc.integer(), fc.constant(null), fc.string())), { maxLength: 3 }),
        fc.string({ unit: 'binary' }),
        fc.string({ unit: 'binary' }),
        fc.nat({ max: 7 }),
        fc.nat(),
        (members, content, obfuscation, shift, edit) => {
          const json = (c: string, o: string) => ({ content: c, ...Object.fromEntries(members), obfuscation: o })
          const learnt = learn(event(json('x', 'y')))!
          const buf = Buffer.concat([Buffer.alloc(shift, 0x20), event(json(content, obfuscation))])
          expect(learnt.match(buf, shift, buf.length)).toBe(buf.length)
          // Any byte changed outside the free strings stops the match (or leaves the same JSON).
          const original = event(json(content, obfuscation))
          const i = edit % original.length
          const changed = Buffer.from(original)
          changed[i] = changed[i] === 0x7a ? 0x79 : 0x7a
          if (learnt.match(changed, 0, changed.length) === changed.length)
            expect(shape(changed)).toEqual(shape(original))
        },
      ),
      { numRuns: 1000 },
    )
  })

  it('free a string only where it is the value of a free member', () => {
    // `content` as a string inside an array, or as a key's value that is not a string, is not free.
    const t = learn(event({ content: ['a'], x: 'content', obfuscation: 'o' }))!
    const same = event({ content: ['a'], x: 'content', obfuscation: 'other' })
    expect(t.match(same, 0, same.length)).toBe(same.length)
    const changed = event({ content: ['b'], x: 'content', obfuscation: 'o' })
    expect(t.match(changed, 0, changed.length)).toBe(-1)
  })

  it('match chunks that lie anywhere in shared memory, one after another', () => {
    // Node's pool puts small Buffers side by side in one ArrayBuffer; the view of that memory is kept
    // from one chunk to the next, and each chunk is read from its own offset in it.
    const memory = Buffer.alloc(2048)
    let free = 3
    const place = (bytes: Buffer) => {
      const at = free
      free += bytes.copy(memory, at) + 5
      return memory.subarray(at, at + bytes.length)
    }
    const a = place(event(chunk('one')))
    const b = place(event(chunk('two', 'xyz', { usage: { prompt_tokens: 1 } })))
    const c = place(event(chunk('three')))
    expect(a.buffer).toBe(c.buffer)
    expect(a.byteOffset).not.toBe(c.byteOffset)
    for (const [buf, end] of [
      [a, a.length],
      [b, -1],
      [c, c.length],
      [a, a.length],
    ] as const) {
      expect(template.match(buf, 0, buf.length)).toBe(end)
    }
  })

  it('keep nothing of the event they were learnt from, and do not change it', async () => {
    // The template's words are read where the event lies; neither it nor the lexer holds the chunk.
    let source: Buffer | undefined = Buffer.from(event(chunk('learnt from')))
    const before = Buffer.from(source)
    const t = learn(source)!
    expect(source.equals(before)).toBe(true)
    const ref = new WeakRef(source)
    source = undefined
    const other = event(chunk('another chunk'))
    expect(t.match(other, 0, other.length)).toBe(other.length) // the process's one view now holds this one
    expect(await collected(ref)).toBe(true)
    expect(t.match(other, 0, other.length)).toBe(other.length)
  })

  it('compare the shortest parts there are, between two free strings and after the last', () => {
    // `","b":"` (7 bytes) between two free strings and `"}` with its blank line (4) after the last are
    // the shortest parts JSON allows: each is compared as two 32-bit words that overlap.
    const free = new Set(['a', 'b'])
    const learnt = (json: unknown) => {
      const buf = event(json)
      return EventTemplate.learn(buf, 0, buf.length, free)
    }
    const t = learnt({ a: 'x', b: 'y' })!
    for (const [a, b] of [
      ['', ''],
      ['long text', 'q'],
      ['\\', '"'],
    ]) {
      const buf = event({ a, b })
      expect(t.match(buf, 0, buf.length)).toBe(buf.length)
    }
    for (const json of [
      { a: 'x', c: 'y' },
      { b: 'x', a: 'y' },
      { a: 'x', b: 1 },
    ]) {
      const buf = event(json)
      expect(t.match(buf, 0, buf.length)).toBe(-1)
    }
  })
})

describe('stringEnd', () => {
  it('finds the closing quote of any JSON string body', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const buf = Buffer.from(`${JSON.stringify(s)}tail`)
        const end = Buffer.byteLength(JSON.stringify(s)) - 1
        expect(stringEnd(buf, 1, buf.length)).toBe(end)
        expect(stringEnd(buf, 1, end)).toBe(-1)
      }),
      { numRuns: 500 },
    )
  })

  it('by words, answers as it does byte by byte, on any bytes at any alignment', () => {
    // Bytes that end a string or make it invalid, and bytes either side of them in value (0x1f/0x20,
    // 0x21/0x23, 0x5b/0x5d, 0x7f/0x80), so that a borrow between the bytes of a word would show.
    const bytes = fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a))
    const special = fc
      .array(
        fc.constantFrom(0x00, 0x0a, 0x0d, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x75, 0x7f, 0x80, 0xff, 0x61),
        {
          maxLength: 24,
        },
      )
      .map((a) => Buffer.from(a))
    fc.assert(
      fc.property(fc.oneof(bytes, special), fc.nat({ max: 7 }), fc.nat({ max: 30 }), (body, shift, cut) => {
        const buf = Buffer.concat([Buffer.alloc(shift, 0x61), body, Buffer.from('"tail')])
        const view = viewOf(buf)
        for (const limit of [buf.length, Math.min(buf.length, shift + cut)]) {
          expect(stringEndByWords(buf, view, buf.byteOffset, shift, limit)).toBe(stringEnd(buf, shift, limit))
        }
      }),
      { numRuns: 3000 },
    )
  })
})

/** The template of a Chat chunk, new each time (the kernel's first window for it is the one set). */
const hello = () => learn(event(chunk('Hello')))!

/**
 * `run` in JavaScript and in the kernel (from `from` bytes, first window `first`): the same answer. A
 * template new to the kernel, whose first window is `first` long.
 */
function both(buf: Buffer, at: number, limit: number, from = 0, first = 16): { end: number; ran: number } {
  const template = hello()
  useSimdKernel(false)
  const end = template.run(buf, at, limit)
  const ran = template.ran
  useSimdKernel(true, from, first)
  expect(template.run(buf, at, limit)).toBe(end)
  expect(template.ran).toBe(ran)
  return { end, ran }
}

describe('event templates in the SIMD kernel', () => {
  afterEach(() => useSimdKernel(true))
  const template = hello()

  it('passes what the compare in JavaScript passes, for any events in any windows', () => {
    const free = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.string({ unit: fc.constantFrom('a', '"', '\\', '\\n', '\\u00e9', '\u00e9', ' ', 'é', '\\"') }),
      fc.string({ unit: fc.constantFrom('a', '\\', 'u', '0', 'g', '\n', '\t', '"', 'x'), maxLength: 40 }),
    )
    const one = fc.oneof(
      // Events that match, one that differs outside its free strings, raw bytes in a free string
      // (JSON.stringify would escape them), and CRLF line ends.
      { weight: 6, arbitrary: fc.tuple(free, free).map(([c, o]) => event(chunk(c, o))) },
      { weight: 1, arbitrary: free.map((c) => event(chunk(c, 'x', { usage: { prompt_tokens: 1 } }))) },
      {
        weight: 1,
        arbitrary: fc
          .string({ unit: fc.constantFrom('a', '"', '\\', '\n', '\x00', 'u', '1') })
          .map((raw) => Buffer.from(event(chunk('RAW')).toString('latin1').replace('RAW', raw), 'latin1')),
      },
      { weight: 1, arbitrary: free.map((c) => event(chunk(c), '\r\n\r\n')) },
    )
    fc.assert(
      fc.property(
        fc.array(one, { maxLength: 24 }),
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 1, max: 4096 }),
        (events, cut, start, first) => {
          const buf = Buffer.concat(events)
          const limit = buf.length - (buf.length === 0 ? 0 : cut % Math.min(buf.length, 400))
          // From an event's start, or from anywhere.
          let at = 0
          const from = start % (events.length + 1)
          for (let i = 0; i < from && i < events.length; i++) at += events[i]!.length
          if (start % 5 === 0) at = buf.length === 0 ? 0 : start % buf.length
          if (at > limit) at = limit
          both(buf, at, limit, 0, first)
        },
      ),
      { numRuns: 1500 },
    )
  })

  it('stops where the compare in JavaScript stops, with any one byte of an event changed', () => {
    const events = [event(chunk('one', 'pad')), event(chunk('two\\n', '')), event(chunk('three'))]
    const buf = Buffer.concat(events)
    let stopped = 0
    for (let i = 0; i < buf.length; i++) {
      for (const b of [0x00, 0x0a, 0x22, 0x5c, 0x75, 0x7a, buf[i]! ^ 0x01, buf[i]! ^ 0x80]) {
        const changed = Buffer.from(buf)
        changed[i] = b
        if (both(changed, 0, changed.length).ran < 3) stopped++
      }
    }
    expect(stopped).toBeGreaterThan(buf.length * 4)
  })

  it('goes on across windows, from the event each was cut off in, in chunks that lie anywhere in memory', () => {
    const events = Array.from({ length: 400 }, (_, i) => event(chunk(`word ${i} `.repeat(i % 7), `p${i}`)))
    const all = Buffer.concat(events)
    for (const shift of [0, 1, 3, 7]) {
      const memory = Buffer.alloc(all.length + 16, 0x20)
      all.copy(memory, shift)
      const buf = memory.subarray(shift, shift + all.length)
      for (const first of [16, 64, 333, SIMD_FROM_BYTES]) {
        expect(both(buf, 0, buf.length, 0, first)).toEqual({ end: buf.length, ran: 400 })
      }
      // A usage event in the middle stops it there, in whichever window it lies.
      const usage = event(chunk('u', 'x', { usage: { prompt_tokens: 3 } }))
      const stopped = Buffer.concat([...events.slice(0, 250), usage, ...events.slice(250)])
      const at = events.slice(0, 250).reduce((n, e) => n + e.length, 0)
      expect(both(stopped, 0, stopped.length)).toEqual({ end: at, ran: 250 })
      expect(both(stopped, at + usage.length, stopped.length)).toEqual({ end: stopped.length, ran: 150 })
    }
  })

  it('leaves an event longer than its longest window to the compare in JavaScript', () => {
    const long = event(chunk('x'.repeat(MAX_WINDOW + 100)))
    const short = event(chunk('y'))
    const buf = Buffer.concat([short, short, long, short, long])
    expect(both(buf, 0, buf.length, 0, SIMD_FROM_BYTES)).toEqual({ end: buf.length, ran: 5 })
    // An invalid escape at its end.
    const text = event(chunk(`${'x'.repeat(MAX_WINDOW + 100)}END`)).toString('latin1')
    const broken = Buffer.concat([short, Buffer.from(text.replace('END', '\\q'), 'latin1'), short])
    expect(both(broken, 0, broken.length, 0, SIMD_FROM_BYTES).ran).toBe(1)
  })

  it('leaves a template too large for its memory to the compare in JavaScript', () => {
    const large = (c: string) => event(chunk(c, 'o', { padding: 'z'.repeat(20_000) }))
    const t = EventTemplate.learn(large('a'), 0, large('a').length, FREE)!
    const buf = Buffer.concat([large('b'), large('c')])
    useSimdKernel(true, 0, 16)
    expect(t.run(buf, 0, buf.length)).toBe(buf.length)
    expect(t.ran).toBe(2)
  })

  it('takes templates in turn, as streams interleave', () => {
    const other = EventTemplate.learn(event({ content: 'a', n: 1 }), 0, event({ content: 'a', n: 1 }).length, FREE)!
    const mine = Buffer.concat(Array.from({ length: 20 }, (_, i) => event(chunk(`m${i}`))))
    const theirs = Buffer.concat(Array.from({ length: 30 }, (_, i) => event({ content: `t${i}`, n: 1 })))
    useSimdKernel(true, 0, 16)
    for (let round = 0; round < 3; round++) {
      expect(template.run(mine, 0, mine.length)).toBe(mine.length)
      expect(other.run(theirs, 0, theirs.length)).toBe(theirs.length)
      expect(other.ran).toBe(30)
      expect(other.run(mine, 0, mine.length)).toBe(0)
      expect(template.run(theirs, 0, theirs.length)).toBe(0)
    }
  })
})
