import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { NdjsonFramer } from './ndjson.js'
import { RecordingSink } from './test-sink.js'

/** The framer's sink in these tests. */
class Sink extends RecordingSink {}

/** Pushes `body` cut at `sizes` (cycled), then ends; returns what left and the chunks that left untouched. */
function run(body: string, sizes: number[], sink: Sink, max = 1 << 20) {
  const framer = new NdjsonFramer(max)
  const bytes = Buffer.from(body)
  const out: Buffer[] = []
  const same: boolean[] = []
  for (let i = 0, k = 0; i < bytes.length; k++) {
    const chunk = bytes.subarray(i, i + sizes[k % sizes.length]!)
    const sent = framer.push(chunk, sink)
    same.push(sent.length === 1 && sent[0] === chunk)
    out.push(...sent)
    i += chunk.length
  }
  out.push(...framer.end(sink))
  return { text: Buffer.concat(out).toString('utf8'), same }
}

const A = '{"done":false,"message":{"content":"h\\u003ci ✓"}}'
const B = '{"done":true,"eval_count":3}'

describe('NdjsonFramer', () => {
  it('hands each line over at its LF, with its offset, and leaves the bytes as they came', () => {
    const sink = new Sink()
    const body = `${A}\n\n${B}\n`
    const { text, same } = run(body, [Buffer.byteLength(body)], sink)
    expect(text).toBe(body)
    expect(same).toEqual([true])
    expect(sink.events).toEqual([
      { raw: A, at: 0 },
      { raw: B, at: Buffer.byteLength(A) + 2 },
    ])
  })

  it('a line is handed over as soon as its LF arrives, before the body ends', () => {
    const sink = new Sink()
    const framer = new NdjsonFramer(1 << 20)
    const out = framer.push(Buffer.from(`${A}\n{"do`), sink)
    expect(sink.events.map((e) => e.raw)).toEqual([A])
    expect(Buffer.concat(out).toString()).toBe(`${A}\n`)
    framer.push(Buffer.from('ne":true}\n'), sink)
    expect(sink.events.map((e) => e.raw)).toEqual([A, '{"done":true}'])
  })

  it('leaves CR out of the line and keeps it on the wire, also when a replaced line ends in CRLF', () => {
    const sink = new Sink((raw) => (raw === B ? '{"done":true,"eval_count":4}' : undefined))
    const body = `${A}\r\n${B}\r\n`
    for (const size of [1, 2, 5, body.length]) {
      sink.events.length = 0
      const { text } = run(body, [size], sink)
      expect(text).toBe(`${A}\r\n{"done":true,"eval_count":4}\r\n`)
      expect(sink.events.map((e) => e.raw)).toEqual([A, B])
    }
  })

  it('reads a last line without its LF, and leaves a cut one unread', () => {
    const whole = new Sink()
    expect(run(`${A}\n${B}`, [7], whole).text).toBe(`${A}\n${B}`)
    expect(whole.events.map((e) => e.raw)).toEqual([A, B])
    const cut = new Sink()
    expect(run(`${A}\n{"done":tr`, [7], cut).text).toBe(`${A}\n{"done":tr`)
    expect(cut.events.map((e) => e.raw)).toEqual([A])
  })

  it('a line over the bound leaves as it comes and is read on the way', () => {
    const sink = new Sink()
    const long = `{"done":true,"pad":"${'x'.repeat(100)}"}`
    const { text } = run(`${A}\n${long}\n${B}\n`, [16], sink, 64)
    expect(text).toBe(`${A}\n${long}\n${B}\n`)
    expect(sink.oversize).toHaveLength(1)
    expect(sink.oversize[0]!.head + sink.oversize[0]!.scanner.text.slice(sink.oversize[0]!.head.length)).toContain(
      '"pad"',
    )
    expect(sink.oversize[0]!.scanner.ended).toBe(1)
    expect(sink.events.map((e) => e.raw)).toEqual([A, B])
  })

  it('any chunking gives the same lines, offsets and output', () => {
    const body = `${A}\r\n\n${B}\n${A}\n${B}`
    const replace = (raw: string) => (raw === B ? '{"done":true,"eval_count":30}' : undefined)
    const whole = new Sink(replace)
    const expected = run(body, [Buffer.byteLength(body)], whole)
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 6 }), (sizes) => {
        const sink = new Sink(replace)
        expect(run(body, sizes, sink).text).toBe(expected.text)
        expect(sink.events).toEqual(whole.events)
      }),
      { numRuns: 100 },
    )
  })
})
