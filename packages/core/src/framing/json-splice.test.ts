import { describe, expect, it } from 'vitest'
import { findMember, spliceMember } from './json-splice.js'

describe('spliceMember', () => {
  it('replaces one member and leaves every other byte as it was', () => {
    const text = '{"a": "x\\"y",  "usage" : {"n":1} ,"b":[1,{"usage":2}]}'
    expect(spliceMember(text, ['usage'], { n: 2 })).toBe('{"a": "x\\"y",  "usage" : {"n":2} ,"b":[1,{"usage":2}]}')
  })

  it('follows a path of keys, and says undefined for one that is not there', () => {
    const text = '{"x_groq":{"id":"q","usage":{"n":1}}}'
    expect(spliceMember(text, ['x_groq', 'usage'], { n: 3 })).toBe('{"x_groq":{"id":"q","usage":{"n":3}}}')
    expect(findMember(text, ['x_groq', 'other'])).toBeUndefined()
    expect(findMember(text, ['usage'])).toBeUndefined()
  })

  it('rewrites the member JSON.parse reads when a key repeats: the last one', () => {
    const text = '{"usage":{"total_tokens":2},"usage":{"total_tokens":7}}'
    const out = spliceMember(text, ['usage'], { total_tokens: 120 })!
    expect(out).toBe('{"usage":{"total_tokens":2},"usage":{"total_tokens":120}}')
    expect(JSON.parse(out).usage).toEqual({ total_tokens: 120 })
    const nested = '{"r":{"usage":1},"r":{"usage":2}}'
    expect(JSON.parse(spliceMember(nested, ['r', 'usage'], 9)!)).toEqual({ r: { usage: 9 } })
  })
})
