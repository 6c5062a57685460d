import { describe, expect, it } from 'vitest'
import { Buffer } from '../buffer.js'
import { needles, quickFind, quickSearches } from './bytes.js'

describe('quick searches', () => {
  it('searches needles that differ only in their last byte once, and the others alone', () => {
    const set = needles('ge_', 'ge"', 'rror', 'DONE]', 'eM')
    const plan = quickSearches(set)
    expect(plan.map((s) => [s.prefix.toString(), s.lasts && Buffer.from(s.lasts).toString()])).toEqual([
      ['ge', '_"'],
      ['rror', undefined],
      ['DONE]', undefined],
      ['eM', undefined],
    ])
    expect(quickSearches(set)).toBe(plan) // made once per set
  })

  it('finds the first place any needle of a group matches, and passes a prefix that another byte follows', () => {
    const [ge] = quickSearches(needles('ge_', 'ge"'))
    const buf = Buffer.from('a large gem, "usage": {} message_start')
    expect(quickFind(buf, ge!, 0)).toBe(buf.indexOf('ge"'))
    expect(quickFind(buf, ge!, buf.indexOf('ge"') + 1)).toBe(buf.indexOf('ge_'))
    expect(quickFind(buf, ge!, buf.indexOf('ge_') + 1)).toBe(-1)
    expect(quickFind(Buffer.from('gem, gel, get'), ge!, 0)).toBe(-1)
  })

  it('counts a prefix that ends the chunk as a match: the byte after it is not known yet', () => {
    const [ge] = quickSearches(needles('ge_', 'ge"'))
    expect(quickFind(Buffer.from('event: messa'), ge!, 0)).toBe(-1)
    expect(quickFind(Buffer.from('event: message'), ge!, 0)).toBe('event: messa'.length)
  })
})
