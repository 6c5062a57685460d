import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { pattern, startsWith } from './words.js'

const naive = (buf: Buffer, at: number, p: Uint8Array) => buf.subarray(at, at + p.length).equals(p)

describe('startsWith, eight bytes at a time', () => {
  it('agrees with a byte compare at any offset, for any bytes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 60 }),
        fc.nat(40),
        fc.nat(1000),
        fc.uint8Array({ maxLength: 40 }),
        (p, at, flip, pad) => {
          const buf = Buffer.concat([Buffer.alloc(at, 1), p, pad])
          const pat = pattern(p)
          expect(startsWith(buf, at, pat)).toBe(true)
          // The same bytes with one of them changed.
          const i = at + (flip % p.length)
          buf[i] = buf[i]! ^ (1 << (flip % 8))
          expect(startsWith(buf, at, pat)).toBe(naive(buf, at, p))
        },
      ),
      { numRuns: 500 },
    )
  })

  it('reads each chunk at its own offset when chunks share memory', () => {
    // Slices of one socket read, or Buffers from Node's pool: one view of their memory serves them all.
    const head = Buffer.from(':event-type\x07\x00\x05chunk:content-type\x07')
    const memory = Buffer.alloc(512, 0x2e)
    const chunks = [3, 77, 150, 301].map((at, i) => {
      const chunk = memory.subarray(at, at + 120)
      head.copy(chunk, i * 5)
      return { chunk, at: i * 5 }
    })
    const p = pattern(head)
    for (const { chunk, at } of [...chunks, ...chunks]) {
      expect(startsWith(chunk, at, p)).toBe(true)
      expect(startsWith(chunk, at, p, chunk.byteOffset)).toBe(true)
      expect(startsWith(chunk, at + 1, p)).toBe(false)
    }
    // A byte changed in the shared memory is seen through the view kept for it, in that chunk alone.
    const flipped = 150 + 10 + 3
    memory[flipped] = memory.readUInt8(flipped) ^ 0x01
    expect(chunks.map(({ chunk, at }) => startsWith(chunk, at, p))).toEqual([true, true, false, true])
  })

  it('tells the two zeros apart, and finds a NaN equal to itself', () => {
    const zero = Buffer.alloc(16)
    const negative = Buffer.alloc(16)
    negative.writeDoubleLE(-0, 0)
    expect(negative.equals(zero)).toBe(false)
    expect(startsWith(negative, 0, pattern(zero))).toBe(false)
    expect(startsWith(zero, 0, pattern(negative))).toBe(false)
    const nan = Buffer.alloc(8)
    nan.writeDoubleLE(Number.NaN, 0)
    expect(startsWith(Buffer.concat([nan, zero]), 0, pattern(nan))).toBe(true)
    expect(pattern(nan).exact).toBe(false)
    expect(pattern(Buffer.from('{"bytes":"eyJ0eXBlIjoi')).exact).toBe(true)
  })
})
