import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { JsonArrayFramer } from './json-array.js'
import { RecordingSink } from './test-sink.js'

/** The framer's sink in these tests. */
class Sink extends RecordingSink {}

function run(
  body: Buffer | string,
  sizes: number[] = [],
  sink = new Sink(),
  max = 1 << 20,
): { out: Buffer; sink: Sink; pushes: Buffer[][] } {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body)
  const framer = new JsonArrayFramer(max)
  const pushes: Buffer[][] = []
  let at = 0
  for (let n = 0; at < bytes.length; n++) {
    const size = sizes.length ? Math.max(1, sizes[n % sizes.length]!) : bytes.length
    const chunk = bytes.subarray(at, at + size)
    at += chunk.length
    pushes.push(framer.push(chunk, sink))
  }
  pushes.push(framer.end(sink))
  return { out: Buffer.concat(pushes.flat()), sink, pushes }
}

const ELEMENTS = [
  '{"candidates":[{"content":{"parts":[{"text":"a [b] {c} \\"d\\" \\\\"}]}}],"usageMetadata":{"promptTokenCount":9}}',
  '{"text":"]}, {\\"x\\": [","n":[1,[2,{"k":"}"}]]}',
  '{"usageMetadata":{"totalTokenCount":217},"emoji":"caf\u00e9 \u2713 \ud83d\ude00"}',
]
const BODY = `[${ELEMENTS.join('\r\n,')}\r\n]`

describe('JSON array framing', () => {
  it('hands each top-level element over with its exact bytes and stream offset', () => {
    const { out, sink } = run(BODY)
    expect(sink.events.map((e) => e.raw)).toEqual(ELEMENTS)
    expect(sink.events.map((e) => e.at)).toEqual(ELEMENTS.map((e) => BODY.indexOf(e)))
    expect(out.equals(Buffer.from(BODY))).toBe(true)
  })

  it('emits an element as soon as it closes, before the closing bracket arrives', () => {
    const framer = new JsonArrayFramer(1 << 20)
    const sink = new Sink()
    expect(Buffer.concat(framer.push(Buffer.from(`[${ELEMENTS[0]!.slice(0, 20)}`), sink)).toString()).toBe('[')
    const out = framer.push(Buffer.from(`${ELEMENTS[0]!.slice(20)}\r\n,`), sink)
    expect(sink.events).toHaveLength(1)
    expect(Buffer.concat(out).toString()).toBe(`${ELEMENTS[0]!}\r\n,`)
  })

  it('gives any chunking the same events and the same bytes out', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 6 }), (sizes) => {
        const { out, sink } = run(BODY, sizes)
        expect(sink.events.map((e) => e.raw)).toEqual(ELEMENTS)
        expect(out.toString()).toBe(BODY)
      }),
      { numRuns: 200 },
    )
  })

  it('returns a chunk with nothing to replace as the same Buffer', () => {
    const framer = new JsonArrayFramer(1 << 20)
    const chunk = Buffer.from(`[${ELEMENTS[0]},${ELEMENTS[1]}`)
    const out = framer.push(chunk, new Sink())
    expect(out).toHaveLength(1)
    expect(out[0]).toBe(chunk)
  })

  it('hands a held element over once, and holds none of the bytes between elements', () => {
    const sink = new Sink()
    const { pushes } = run(BODY, [5], sink)
    expect(sink.events).toHaveLength(3)
    // The bytes before the first element leave with the first chunk.
    expect(pushes[0]!.map(String).join('')).toBe('[')
  })

  it('replaces only the element the sink rewrites, every other byte as it came', () => {
    const sink = new Sink((raw) => (raw.includes('totalTokenCount') ? raw.replace('217', '218') : undefined))
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 4 }), (sizes) => {
        const { out } = run(BODY, sizes, sink)
        expect(out.toString()).toBe(BODY.replace('217', '218'))
      }),
      { numRuns: 50 },
    )
  })

  it('reads a top-level object that is not in an array as one element (an error body)', () => {
    const body = ' {"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}\n'
    const { out, sink } = run(body, [7])
    expect(sink.events.map((e) => e.raw)).toEqual([body.trim()])
    expect(sink.stops).toEqual([])
    expect(out.toString()).toBe(body)
  })

  it('tolerates a byte order mark and an empty array', () => {
    const { out, sink } = run(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('[ ]')]), [1])
    expect(sink.events).toEqual([])
    expect(sink.stops).toEqual([])
    expect(out.length).toBe(6)
  })

  it('stops on a body that is not a JSON array and passes every byte from there', () => {
    const body = `[${ELEMENTS[0]} ${ELEMENTS[1]}]`
    const { out, sink } = run(body, [10])
    expect(sink.events).toHaveLength(1)
    expect(sink.stops).toEqual([{ reason: 'no comma between elements of the JSON array', at: ELEMENTS[0]!.length + 2 }])
    expect(out.toString()).toBe(body)
    const text = run('data: {"a":1}\n\n')
    expect(text.sink.stops[0]?.reason).toBe('the body is not a JSON array')
    expect(text.out.toString()).toBe('data: {"a":1}\n\n')
  })

  it('leaves an element cut by the end of the body unread, its bytes untouched', () => {
    const body = `[${ELEMENTS[0]},${ELEMENTS[1]!.slice(0, 12)}`
    const { out, sink } = run(body, [9])
    expect(sink.events.map((e) => e.raw)).toEqual([ELEMENTS[0]])
    expect(out.toString()).toBe(body)
  })

  it('lets an element over the bound leave as it comes, its payload read on the way', () => {
    const big = `{"inlineData":"${'A'.repeat(300)}","usageMetadata":{"promptTokenCount":3}}`
    const body = `[${ELEMENTS[0]},${big},${ELEMENTS[2]}]`
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 4 }), (sizes) => {
        const { out, sink } = run(body, sizes, new Sink(), 200)
        expect(out.toString()).toBe(body)
        expect(sink.events.map((e) => e.raw)).toEqual([ELEMENTS[0], ELEMENTS[2]])
        expect(sink.oversize).toHaveLength(1)
        expect(sink.oversize[0]!.at).toBe(body.indexOf(big))
        expect(sink.oversize[0]!.scanner.text).toBe(big)
        expect(sink.oversize[0]!.scanner.ended).toBe(1)
      }),
      { numRuns: 50 },
    )
  })

  it('hands back what it holds when stopped from outside', () => {
    const framer = new JsonArrayFramer(1 << 20)
    const sink = new Sink()
    framer.push(Buffer.from('['), sink)
    expect(framer.push(Buffer.from('{"a":'), sink)).toEqual([])
    expect(Buffer.concat(framer.stop()).toString()).toBe('{"a":')
    const rest = Buffer.from('1}]')
    expect(framer.push(rest, sink)[0]).toBe(rest)
  })
})
