/**
 * Each example gateway serves GET /metrics from the Prometheus sink it passes to usagewire: after SDK
 * requests through it, the counters say what the records say.
 */
import type { UsageRecord } from '@usagewire/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { send } from '../../examples/clients.js'
import { ADAPTERS, startGateway, type RunningGateway } from '../../examples/gateways.js'
import { startMockUpstream, type MockUpstream } from '../../examples/mock-upstream/index.js'
import { waitFor } from '../matrix/upstream.js'
import { sampleSum } from './exposition.js'

let mock: MockUpstream
beforeAll(async () => {
  mock = await startMockUpstream()
})
afterAll(() => mock.close())

describe.each(ADAPTERS)('the %s example gateway', (adapter) => {
  let gateway: RunningGateway
  const records: UsageRecord[] = []
  beforeAll(async () => {
    gateway = await startGateway(adapter, { upstream: mock.url, onUsage: (r) => records.push(r) })
  })
  afterAll(() => gateway.close())

  it('serves GET /metrics in the text format, before any request', async () => {
    const res = await fetch(`${gateway.url}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(await res.text()).toContain('# TYPE usagewire_cache_read_input_tokens_total counter')
  })

  it('counts what the records say: tokens by bucket, requests by status, corrections by field', async () => {
    for (const model of ['healthy', 'anthropic-delta-zeros']) {
      await send({ kind: 'anthropic', baseURL: gateway.url, model, headers: {} })
    }
    await send({ kind: 'openai-chat', baseURL: gateway.url, model: 'chat-anthropic-fields', headers: {} })
    await waitFor(() => records.length >= 3, 'three records')
    const text = await (await fetch(`${gateway.url}/metrics`)).text()

    const total = (bucket: 'input' | 'cacheRead' | 'output') => records.reduce((sum, r) => sum + r.usage[bucket], 0)
    expect(sampleSum(text, 'usagewire_cache_read_input_tokens_total')).toBe(total('cacheRead'))
    expect(sampleSum(text, 'usagewire_input_tokens_total')).toBe(total('input'))
    expect(sampleSum(text, 'usagewire_output_tokens_total')).toBe(total('output'))
    const anthropic = records.filter((r) => r.dialect === 'anthropic-messages')
    expect(anthropic).toHaveLength(2)
    expect(
      sampleSum(text, 'usagewire_cache_read_input_tokens_total', {
        model: anthropic[0]!.model!,
        dialect: 'anthropic-messages',
        route: '/v1/messages',
      }),
    ).toBe(anthropic.filter((r) => r.model === anthropic[0]!.model).reduce((sum, r) => sum + r.usage.cacheRead, 0))
    expect(sampleSum(text, 'usagewire_requests_total', { status: 'complete' })).toBe(3)
    const corrections = records.reduce((sum, r) => sum + r.corrections.length, 0)
    expect(corrections).toBeGreaterThan(0)
    expect(sampleSum(text, 'usagewire_corrections_total')).toBe(corrections)
    expect(sampleSum(text, 'usagewire_duration_seconds_count')).toBe(3)
  })

  it('a path that is not /metrics is still not the gateway’s to answer', async () => {
    expect((await fetch(`${gateway.url}/metricsx`)).status).toBe(404)
  })
})
