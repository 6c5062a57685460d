/**
 * A real Prometheus scrapes an example gateway's GET /metrics: the cache-read counter it stores equals the
 * sum of the records' cacheRead after Anthropic streams with cache hits through the gateway. Prometheus
 * comes from the system (`apt-get install prometheus`; .ci/run installs it). Without it the test is
 * skipped locally, with the reason printed, and fails in CI (CI=true).
 */
import type { UsageRecord } from '@usagewire/core'
import { afterAll, describe, expect, it } from 'vitest'
import { send } from '../../examples/clients.js'
import { startGateway, type RunningGateway } from '../../examples/gateways.js'
import { startMockUpstream, type MockUpstream } from '../../examples/mock-upstream/index.js'
import { waitFor } from '../matrix/upstream.js'
import { pollValue, PROMETHEUS_BIN as binary, queryValue, startPrometheus, type Prometheus } from './prometheus.js'

const inCI = process.env.CI === 'true'
if (!binary && !inCI)
  console.warn('test/prometheus/scrape.test.ts skipped: no `prometheus` binary on PATH (apt-get install -y prometheus)')

describe.skipIf(!binary && !inCI)('a real Prometheus scraping an example gateway', () => {
  let mock: MockUpstream | undefined
  let gateway: RunningGateway | undefined
  let prometheus: Prometheus | undefined

  afterAll(async () => {
    await prometheus?.stop()
    await gateway?.close()
    await mock?.close()
  })

  it('stores sum(usagewire_cache_read_input_tokens_total) equal to the records’ cacheRead', async () => {
    expect(binary, 'CI=true: `prometheus` must be on PATH (.ci/run installs it with apt-get)').toBeDefined()
    const records: UsageRecord[] = []
    mock = await startMockUpstream()
    gateway = await startGateway('express', { upstream: mock.url, onUsage: (r) => records.push(r) })
    prometheus = await startPrometheus(binary!, [
      { name: 'usagewire-gateway', path: '/metrics', target: new URL(gateway.url).host },
    ])

    // Anthropic streams that read from the provider's prompt cache, one of them with 0s in message_delta.
    const models = ['healthy', 'anthropic-delta-zeros', 'anthropic-zero-start']
    for (const model of models) await send({ kind: 'anthropic', baseURL: gateway.url, model, headers: {} })
    await waitFor(() => records.length === models.length, 'the records')
    const expected = records.reduce((sum, r) => sum + r.usage.cacheRead, 0)
    expect(expected).toBeGreaterThan(0)

    // The first sample becomes queryable only after a few seconds; poll until it has the last scrape's value.
    const seen = await pollValue(prometheus.url, 'sum(usagewire_cache_read_input_tokens_total)', expected)
    expect(seen, `Prometheus log:\n${prometheus.output().slice(-2000)}`).toBe(expected)
    expect(await queryValue(prometheus.url, 'sum(usagewire_requests_total{status="complete"})')).toBe(models.length)
  }, 60_000)
})
