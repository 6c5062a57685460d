import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { EventTemplate } from './template.js'
import { MAX_WINDOW, SIMD_FROM_BYTES, useSimdKernel } from '../framing/simd.js'

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

const learn = () => EventTemplate.learn(event(chunk('Hello')), 0, event(chunk('Hello')).length, FREE)!
const template = learn()

/**
 * `run` in JavaScript and in the kernel (from `from` bytes, first window `first`): the same answer. A
 * template new to the kernel, whose first window is `first` long.
 */
function both(buf: Buffer, at: number, limit: number, from = 0, first = 16): { end: number; ran: number } {
  const template = learn()
  useSimdKernel(false)
  const end = template.run(buf, at, limit)
  const ran = template.ran
  useSimdKernel(true, from, first)
  expect(template.run(buf, at, limit)).toBe(end)
  expect(template.ran).toBe(ran)
  return { end, ran }
}

afterEach(() => useSimdKernel(true))

describe('event templates in the SIMD kernel', () => {
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
