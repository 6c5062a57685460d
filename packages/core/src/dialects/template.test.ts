import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { EventTemplate, stringEnd } from './template.js'

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
      'event: x\ndata: {"a":1}\n\n',
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

  it('free a string only where it is the value of a free member', () => {
    // `content` as a string inside an array, or as a key's value that is not a string, is not free.
    const t = learn(event({ content: ['a'], x: 'content', obfuscation: 'o' }))!
    const same = event({ content: ['a'], x: 'content', obfuscation: 'other' })
    expect(t.match(same, 0, same.length)).toBe(same.length)
    const changed = event({ content: ['b'], x: 'content', obfuscation: 'o' })
    expect(t.match(changed, 0, changed.length)).toBe(-1)
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
})
