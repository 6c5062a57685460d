import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Exchange } from '@usagewire/core'
import { Correlator, sameWithoutSpace } from './correlate.js'
import { Reading } from './reading.js'

describe('sameWithoutSpace', () => {
  // Every character `\s` matches, and some it does not (zero-width space, the next-line control, a
  // letter), in texts that differ only in their white space or not at all.
  const unit = fc.constantFrom(
    ...' \t\n\v\f\r\u00a0\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000\ufeff\u200b\u0085ab{}"é😀'.split(''),
  )
  const text = fc.string({ unit, maxLength: 30 })

  it('is the compare of the texts with /\\s+/g taken out', () => {
    const strip = (s: string) => s.replace(/\s+/g, '')
    fc.assert(
      fc.property(text, text, (a, b) => {
        expect(sameWithoutSpace(a, b)).toBe(strip(a) === strip(b))
      }),
      { numRuns: 3000 },
    )
    // Pairs that are the same text, their white space moved.
    fc.assert(
      fc.property(text, fc.array(fc.nat(), { maxLength: 5 }), (a, at) => {
        let b = a.replace(/\s+/g, '')
        for (const i of at) b = `${b.slice(0, i % (b.length + 1))} \u2028${b.slice(i % (b.length + 1))}`
        expect(sameWithoutSpace(a, b)).toBe(true)
        expect(sameWithoutSpace(a, `${b}x`)).toBe(false)
      }),
    )
  })
})

describe('Correlator.needsText', () => {
  /** What the correlator asks of an Exchange, and no more. */
  const exchange = () =>
    ({
      correlate() {},
      hold: () => ({ release() {} }),
      openTap: () => ({}),
      tapped() {},
    }) as unknown as Exchange

  it('a request joined by the header before its answer came needs no text; one not joined yet does', () => {
    const correlator = new Correlator(['header', 'content', 'single'], 1000)
    correlator.client('a', exchange())
    correlator.client('b', exchange())
    expect(correlator.needsText('a')).toBe(true)
    expect(correlator.call(new Reading('/v1/messages'), 'a')).toBeDefined()
    expect(correlator.needsText('a')).toBe(false)
    expect(correlator.needsText('b')).toBe(true)
    // A call whose header names no request in flight is read for a join by content.
    expect(correlator.call(new Reading('/v1/messages'), 'nobody')).toBeUndefined()
    expect(correlator.callsNeedText).toBe(true)
    expect(correlator.needsText('gone')).toBe(false)
  })

  it('without the content strategy nothing needs text', () => {
    const correlator = new Correlator(['header', 'single'], 1000)
    correlator.client('a', exchange())
    expect(correlator.needsText('a')).toBe(false)
    expect(correlator.callsNeedText).toBe(false)
  })
})
