import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { JSON_SCAN_MAX_DEPTH, JsonMemberScanner } from './json-scan.js'

type Path = readonly string[]

const USAGE_PATHS: Path[] = [['type'], ['response', 'usage'], ['response', 'model'], ['usage'], ['error']]

/**
 * Feeds `text` to a scanner in pieces of `sizes` (cycled). Odd pieces are written as a range of the whole
 * document (the bytes after `end` are the real continuation, which must not be read), even ones from a
 * copy between bytes that look like JSON (quotes and backslashes), which must not be read either.
 */
function scan(text: string | Buffer, paths: readonly Path[] = USAGE_PATHS, sizes: number[] = [1 << 30], max?: number) {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text)
  const scanner = new JsonMemberScanner(paths, max)
  for (let at = 0, n = 0; at < bytes.length; n++) {
    const size = Math.max(1, sizes[n % sizes.length]!)
    const to = Math.min(bytes.length, at + size)
    if (n % 2 === 1) scanner.write(bytes, at, to)
    else {
      const junk = Buffer.from('\\"\\\\"'.repeat(n % 3))
      const padded = Buffer.concat([junk, bytes.subarray(at, to), junk])
      scanner.write(padded, junk.length, junk.length + (to - at))
    }
    at = to
  }
  scanner.end()
  return { result: scanner.result(), problem: scanner.problem }
}

/** The oracle: the members at `paths` of `JSON.parse(text)`, shaped like the document. */
function pick(text: string, paths: readonly Path[]): Record<string, unknown> {
  const doc: unknown = JSON.parse(text)
  const out: Record<string, unknown> = {}
  const set = (obj: Record<string, unknown>, key: string, value: unknown) =>
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true })
  // A path under another one comes with it.
  const kept = paths.filter((p) => !paths.some((q) => q.length < p.length && q.every((k, i) => k === p[i])))
  for (const path of kept) {
    let at: unknown = doc
    let ok = true
    for (const key of path) {
      if (typeof at !== 'object' || at === null || Array.isArray(at) || !Object.hasOwn(at, key)) {
        ok = false
        break
      }
      at = (at as Record<string, unknown>)[key]
    }
    if (!ok) continue
    let obj = out
    for (const key of path.slice(0, -1)) {
      if (!Object.hasOwn(obj, key)) set(obj, key, {})
      obj = obj[key] as Record<string, unknown>
    }
    set(obj, path[path.length - 1]!, at)
  }
  return out
}

function valueAt(obj: unknown, path: Path): unknown {
  for (const key of path) {
    if (typeof obj !== 'object' || obj === null || !Object.hasOwn(obj, key)) return undefined
    obj = (obj as Record<string, unknown>)[key]
  }
  return obj
}

/** A small deterministic generator (mulberry32): spelling choices of a document come from one seed. */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (((t ^ (t >>> 14)) >>> 0) % n) as number
  }
}

/** An object as written: its entries in order, keys may repeat. */
class Obj {
  constructor(readonly entries: [string, unknown][]) {}
}

const WS = ['', '', '', '', ' ', '\n', '\t', '\r\n  ', '   ']

/** JSON text of `v`, with whitespace and string spellings chosen by `r`; always valid JSON. */
function write(v: unknown, r: (n: number) => number): string {
  const ws = () => WS[r(WS.length)]!
  const str = (s: string) => {
    switch (r(5)) {
      case 0: // every character escaped
        return `"${[...Array(s.length).keys()].map((i) => '\\u' + s.charCodeAt(i).toString(16).padStart(4, '0')).join('')}"`
      case 1:
        return JSON.stringify(s).replace(/\//g, '\\/')
      case 2: // non-ASCII escaped
        return JSON.stringify(s).replace(/[^\x00-\x7f]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
      default:
        return JSON.stringify(s)
    }
  }
  if (v instanceof Obj)
    return `{${ws()}${v.entries.map(([k, x]) => `${str(k)}${ws()}:${ws()}${write(x, r)}${ws()}`).join(`,${ws()}`)}}`
  if (Array.isArray(v)) return `[${ws()}${v.map((x) => write(x, r) + ws()).join(`,${ws()}`)}]`
  if (typeof v === 'string') return str(v)
  if (typeof v === 'number' && Number.isInteger(v) && Math.abs(v) < 1e15)
    return String(v) + ['', '', 'e0', '.0', 'E+00', '.000e-0'][r(6)]!
  return JSON.stringify(v)
}

const KEYS = ['type', 'usage', 'response', 'model', 'error', 'x', 'é', '😀', 'a"b', 'a\\', '__proto__']
const key = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...KEYS) }, fc.string({ maxLength: 4 }))
/** Strings the scanner must find the end of: escapes near piece ends, multi-byte characters, long runs. */
const tricky = fc.string({
  unit: fc.constantFrom('a', ' ', '"', '\\', '\\\\', '/', 'é', '😀', '\n', '\u0001', '\u2028', '\ud800'),
  maxLength: 200,
})
const { value: docValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })),
    fc.oneof(fc.string({ maxLength: 10 }), tricky),
    tie('object'),
    tie('array'),
  ),
  object: fc.array(fc.tuple(key, tie('value')), { maxLength: 6 }).map((entries) => new Obj(entries)),
  array: fc.array(tie('value'), { maxLength: 4 }),
}))
const rootObject = fc.array(fc.tuple(key, docValue), { maxLength: 8 }).map((entries) => new Obj(entries))
const paths = fc.array(fc.array(fc.constantFrom(...KEYS.slice(0, 8)), { minLength: 1, maxLength: 3 }), {
  minLength: 1,
  maxLength: 6,
})
const sizes = fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 8 })

describe('JsonMemberScanner captures the members at paths', () => {
  it('matches JSON.parse on any document, spelling and chunking', () => {
    fc.assert(
      fc.property(rootObject, paths, sizes, fc.integer(), (doc, ps, cut, seed) => {
        const text = write(doc, rng(seed))
        const { result, problem } = scan(text, [...ps, ...USAGE_PATHS], cut)
        expect(problem).toBeUndefined()
        expect(result).toEqual(pick(text, [...ps, ...USAGE_PATHS]))
      }),
      { numRuns: 300 },
    )
  })

  it('matches JSON.parse on fc.jsonValue documents, pretty-printed', () => {
    const objects = fc.dictionary(fc.oneof(fc.constantFrom(...KEYS), fc.string()), fc.jsonValue(), { maxKeys: 8 })
    const wrapped = fc.oneof(
      objects,
      objects.map((o) => ({ response: o, type: 't' })),
    )
    fc.assert(
      fc.property(wrapped, paths, sizes, fc.integer({ min: 0, max: 4 }), (doc, ps, cut, indent) => {
        const text = JSON.stringify(doc, null, indent)
        const { result, problem } = scan(text, ps, cut)
        expect(problem).toBeUndefined()
        expect(result).toEqual(pick(text, ps))
      }),
    )
  })

  it('a document cut short: problem "incomplete document", and what was captured is right', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...KEYS), docValue), fc.double({ min: 0, max: 1 }), (doc, f) => {
        const whole = JSON.stringify(Object.fromEntries(Object.entries(doc).map(([k, v]) => [k, toPlain(v)])))
        const text = whole.slice(0, Math.floor(f * (whole.length - 1)))
        const { result, problem } = scan(text, USAGE_PATHS, [7, 1, 64])
        expect(problem).toBe('incomplete document')
        const expected = pick(whole, USAGE_PATHS)
        for (const path of USAGE_PATHS) {
          const got = valueAt(result, path)
          if (got !== undefined) expect(got).toEqual(valueAt(expected, path))
        }
      }),
    )
  })

  it('reads "usage" : { with spaces, and pretty-printed CRLF documents', () => {
    expect(scan('{ "usage" : { "input_tokens" : 1 } , "type" :"x" }').result).toEqual({
      usage: { input_tokens: 1 },
      type: 'x',
    })
    const text = JSON.stringify({ type: 'r', response: { id: 'x', usage: { a: [1, { b: 2 }] } } }, null, '\t')
    expect(scan(text.replace(/\n/g, '\r\n')).result).toEqual({ type: 'r', response: { usage: { a: [1, { b: 2 }] } } })
  })

  it('follows escapes split across pieces', () => {
    // `\` ends one piece, `"` starts the next: the quote is escaped.
    expect(scan('{"type":"a\\"b","usage":1}', USAGE_PATHS, [11, 100]).result).toEqual({ type: 'a"b', usage: 1 })
    // `\\` then `"`: the quote ends the string, whether split between the backslashes or after them.
    expect(scan('{"type":"a\\\\","usage":2}', USAGE_PATHS, [11, 100]).result).toEqual({ type: 'a\\', usage: 2 })
    expect(scan('{"type":"a\\\\","usage":2}', USAGE_PATHS, [12, 100]).result).toEqual({ type: 'a\\', usage: 2 })
    // The same in strings that are skipped, short and long (past the byte loop, into indexOf).
    for (const filler of ['', 'x'.repeat(100), 'é'.repeat(300)]) {
      const text = `{"x":"${filler}\\"\\\\\\\\\\"\\\\","y":"${filler}\\u00e9\\\\","usage":{"k":"${filler}\\\\\\""}}`
      const expected = pick(text, USAGE_PATHS)
      for (let cut = 1; cut < text.length; cut++) {
        expect(scan(text, USAGE_PATHS, [cut, 1 << 30]).result).toEqual(expected)
        expect(scan(text, USAGE_PATHS, [cut, 1, 2, 3]).result).toEqual(expected)
      }
      expect(scan(text, USAGE_PATHS, [1]).result).toEqual(expected)
    }
  })

  it('compares keys unescaped', () => {
    expect(scan('{"\\u0075sage":{"a":1},"ty\\u0070e":"t"}').result).toEqual({ usage: { a: 1 }, type: 't' })
    expect(
      scan('{"r\\u00e9sum\\u00E9":1,"\\ud83d\\ude00":2,"a\\"b":3,"\\/":4}', [['résumé'], ['😀'], ['a"b'], ['/']])
        .result,
    ).toEqual({
      résumé: 1,
      '😀': 2,
      'a"b': 3,
      '/': 4,
    })
    // Raw multi-byte keys split inside a character.
    expect(scan('{"résumé":{"😀":true}}', [['résumé', '😀']], [1]).result).toEqual({ résumé: { '😀': true } })
    // Keys too long to be on any path are passed over, whatever escape they are in when found too long.
    expect(scan(`{"${'u'.repeat(1000)}":1,"usage":2}`, USAGE_PATHS, [5]).result).toEqual({ usage: 2 })
    for (let n = 30; n < 60; n++) {
      // The key ends in `\\`, `\"`, `\\`: the long part runs out on each of their bytes as n goes.
      const text = `{"${'u'.repeat(n)}\\\\\\"\\\\":{"usage":1},"usage":2}`
      expect(Object.keys(JSON.parse(text))[0]).toBe('u'.repeat(n) + '\\"\\')
      expect(scan(text, USAGE_PATHS, [1 << 30]), text).toEqual({ result: { usage: 2 }, problem: undefined })
      expect(scan(text, USAGE_PATHS, [n + 2, 1]), text).toEqual({ result: { usage: 2 }, problem: undefined })
    }
  })

  it('the last occurrence of a repeated key wins, as with JSON.parse', () => {
    expect(scan('{"usage":{"a":1},"usage":{"b":2}}').result).toEqual({ usage: { b: 2 } })
    expect(scan('{"response":{"usage":1,"model":"m"},"response":{"model":"n"}}').result).toEqual({
      response: { model: 'n' },
    })
    expect(scan('{"response":{"usage":1},"response":5}').result).toEqual({})
  })

  it('drops a value over maxValueBytes and still captures the others', () => {
    const big = JSON.stringify({ type: 't', usage: { text: 'x'.repeat(100) }, response: { model: 'm' } })
    for (const cut of [[1 << 30], [7], [1]]) {
      const { result, problem } = scan(big, USAGE_PATHS, cut, 64)
      expect(result).toEqual({ type: 't', response: { model: 'm' } })
      expect(problem).toMatch(/^usage over 64 bytes/)
    }
    // A value of exactly the bound is kept.
    const exact = `{"usage":"${'y'.repeat(62)}"}`
    expect(scan(exact, USAGE_PATHS, [3], 64)).toEqual({ result: { usage: 'y'.repeat(62) }, problem: undefined })
  })

  it('never descends into arrays', () => {
    const text = '{"output":[{"usage":1,"type":"no"},[{"usage":2}]],"response":[{"usage":3}],"type":"yes"}'
    expect(scan(text).result).toEqual({ type: 'yes' })
    expect(scan('[{"usage":1}]')).toEqual({ result: {}, problem: undefined })
    expect(scan('{"usage":[{"a":1},2]}').result).toEqual({ usage: [{ a: 1 }, 2] })
  })

  it('a root that is not an object captures nothing', () => {
    for (const text of ['"usage"', '5', '-0.5e3', 'null', 'true', '[]', ' 12 ']) {
      expect(scan(text, USAGE_PATHS, [1])).toEqual({ result: {}, problem: undefined })
    }
  })

  it('a path under another one comes with it', () => {
    const text = '{"response":{"usage":{"a":1},"model":"m"}}'
    expect(scan(text, [['response', 'usage'], ['response']]).result).toEqual({
      response: { usage: { a: 1 }, model: 'm' },
    })
    expect(scan(text, [['response'], ['response', 'usage']]).result).toEqual({
      response: { usage: { a: 1 }, model: 'm' },
    })
  })

  it('skips a leading BOM, even split', () => {
    const text = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"usage":1}')])
    expect(scan(text, USAGE_PATHS, [1])).toEqual({ result: { usage: 1 }, problem: undefined })
    expect(scan(text)).toEqual({ result: { usage: 1 }, problem: undefined })
    expect(scan(Buffer.from([0xef, 0xbb, 0x7b, 0x7d])).problem).toBeDefined()
    expect(scan(Buffer.from([0xef, 0x20, 0x7b, 0x7d])).problem).toBeDefined()
    expect(scan('{"usage":1}\ufeff').problem).toBe('data after the document')
  })

  it('decodes captured values split inside multi-byte characters', () => {
    const text = '{"response":{"model":"gpt-é😀\\u00e9","usage":{"n":"日本"}}}'
    expect(scan(text, USAGE_PATHS, [1]).result).toEqual(pick(text, USAGE_PATHS))
  })

  it('stops at invalid JSON without throwing, keeping what was captured before', () => {
    const invalid = [
      '{"a":1,}',
      '{"a" 1}',
      '{"a":1 "b":2}',
      '{,}',
      '{"a":[1 2]}',
      '{"a":[1,]}',
      '{"a":tru}',
      '{"a":nul,',
      '{"a":01}',
      '{"a":-}',
      '{"a":1.}',
      '{"a":.5}',
      '{"a":1e}',
      '{"a":1e+}',
      '{"a":+1}',
      '{"a":1}x',
      '{"a":1}}',
      '{]',
      '[}',
      "{'a':1}",
      '{a:1}',
      '{"us\\qage":1}',
      '{"usa\nge":1}',
      '{"usage":"\\x"}',
      '{"usage":"a\u0001"}',
      '',
      '   ',
      '{"a":1}{"b":2}',
    ]
    for (const text of invalid) {
      expect(() => JSON.parse(text), text).toThrow()
      for (const cut of [[1 << 30], [1]]) expect(scan(text, USAGE_PATHS, cut).problem, text).toBeDefined()
    }
    const { result, problem } = scan('{"usage":{"a":1},"type":x,"error":"e"}', USAGE_PATHS, [3])
    expect(result).toEqual({ usage: { a: 1 } })
    expect(problem).toBe('expected a value')
  })

  it('ignores writes after a problem', () => {
    const scanner = new JsonMemberScanner(USAGE_PATHS)
    scanner.write(Buffer.from('{"usage":1,]'), 0, 12)
    scanner.write(Buffer.from('"type":"t"}'), 0, 11)
    scanner.end()
    expect(scanner.result()).toEqual({ usage: 1 })
    expect(scanner.problem).toBe('expected a key')
  })

  it('end() before the document is complete', () => {
    const scanner = new JsonMemberScanner(USAGE_PATHS)
    const text = Buffer.from('{"usage":{"a":1},"type":"par')
    scanner.write(text, 0, text.length)
    scanner.end()
    expect(scanner.problem).toBe('incomplete document')
    expect(scanner.result()).toEqual({ usage: { a: 1 } })
    expect(scan('{"usage":12').result).toEqual({})
    expect(scan('-').problem).toBe('incomplete document')
  })

  it(`bounds nesting at ${JSON_SCAN_MAX_DEPTH}`, () => {
    const nest = (n: number) => `{"a":${'['.repeat(n - 2)}{"usage":1}${']'.repeat(n - 2)},"usage":2}`
    expect(scan(nest(JSON_SCAN_MAX_DEPTH), USAGE_PATHS, [100])).toEqual({ result: { usage: 2 }, problem: undefined })
    const { result, problem } = scan(nest(JSON_SCAN_MAX_DEPTH + 1), USAGE_PATHS, [100])
    expect(result).toEqual({})
    expect(problem).toBe(`nesting deeper than ${JSON_SCAN_MAX_DEPTH}`)
  })

  it('rejects an empty path', () => {
    expect(() => new JsonMemberScanner([[]])).toThrow(RangeError)
  })

  it('captures usage after a 16 MiB string', () => {
    const { text, usage } = hugeDocument()
    const { result, problem } = scan(text, USAGE_PATHS, [64 * 1024, 1000, 65_537])
    expect(problem).toBeUndefined()
    expect(result).toEqual({ type: 'response.completed', response: { usage, model: 'gpt-x' } })
  })

  it('does work linear in the bytes: indexOf per piece and per quote, never past the piece', () => {
    // Mostly one string without a quote (an image in base64), and a few quotes after it.
    const { text, usage, quotes } = hugeDocument('iVBORw0KGgoAAAANSUhEUgAA+/')
    const indexOf = Buffer.prototype.indexOf
    let calls = 0
    let scanned = 0
    Buffer.prototype.indexOf = function (this: Buffer, value: number, from?: number) {
      const at = indexOf.call(this, value, from)
      calls++
      scanned += (at === -1 ? this.length : at) - (from ?? 0)
      return at
    } as typeof indexOf
    const scanner = new JsonMemberScanner(USAGE_PATHS)
    let pieces = 0
    try {
      // Every piece a range of the one 16 MiB buffer: a search must not run on to the end of it.
      for (let at = 0; at < text.length; at += 64, pieces++) scanner.write(text, at, Math.min(text.length, at + 64))
      scanner.end()
    } finally {
      Buffer.prototype.indexOf = indexOf
    }
    expect(scanner.problem).toBeUndefined()
    expect(scanner.result()).toEqual({ type: 'response.completed', response: { usage, model: 'gpt-x' } })
    expect(calls).toBeLessThanOrEqual(pieces + 2 * quotes)
    expect(scanned).toBeLessThanOrEqual(2 * text.length)
  })
})

/** An OpenAI Responses `response.completed` event whose output text is 16 MiB of `line`s. */
function hugeDocument(line = 'Ünïcødé ✓ output with a "quoted" word, a \\ backslash and a new\nline; ') {
  const text = line.repeat(Math.ceil((16 << 20) / line.length))
  const usage = { input_tokens: 12, output_tokens: 34567, total_tokens: 34579 }
  const doc = {
    type: 'response.completed',
    response: {
      id: 'resp_1',
      output: [{ type: 'message', content: [{ type: 'output_text', text }] }],
      usage,
      model: 'gpt-x',
    },
  }
  const json = Buffer.from(JSON.stringify(doc))
  let quotes = 0
  for (let i = json.indexOf(0x22); i !== -1; i = json.indexOf(0x22, i + 1)) quotes++
  return { text: json, usage, quotes }
}

/** The plain value of a generated one: an object's repeated keys are given their last value. */
function toPlain(v: unknown): unknown {
  if (v instanceof Obj) {
    const out: Record<string, unknown> = {}
    for (const [k, x] of v.entries)
      Object.defineProperty(out, k, { value: toPlain(x), enumerable: true, writable: true, configurable: true })
    return out
  }
  return Array.isArray(v) ? v.map(toPlain) : v
}
