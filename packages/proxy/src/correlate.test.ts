import { describe, expect, it } from 'vitest'
import type { Exchange } from '@usagewire/core'
import { Correlator } from './correlate.js'
import { Reading } from './reading.js'

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
