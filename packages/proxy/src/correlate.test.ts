import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { sameWithoutSpace } from './correlate.js'

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
