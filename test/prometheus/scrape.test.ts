/**
 * A real Prometheus scrapes an example gateway's GET /metrics: the cache-read counter it stores equals the
 * sum of the records' cacheRead after Anthropic streams with cache hits through the gateway. Prometheus
 * comes from the system (`apt-get install prometheus`; .ci/run installs it). Without it the test is
 * skipped locally, with the reason printed, and fails in CI (CI=true).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { UsageRecord } from '@usagewire/core'
import { afterAll, describe, expect, it } from 'vitest'
import { send } from '../../examples/clients.js'
import { startGateway, type RunningGateway } from '../../examples/gateways.js'
import { startMockUpstream, type MockUpstream } from '../../examples/mock-upstream/index.js'
import { waitFor } from '../matrix/upstream.js'

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue
    const file = path.join(dir, name)
    try {
      accessSync(file, constants.X_OK)
      return file
    } catch {
      // not here
    }
  }
  return undefined
}

const binary = onPath('prometheus')
const inCI = process.env.CI === 'true'
if (!binary && !inCI)
  console.warn('test/prometheus/scrape.test.ts skipped: no `prometheus` binary on PATH (apt-get install -y prometheus)')

interface Running {
  url: string
  process: ChildProcess
  output: () => string
}

/** Prometheus on 127.0.0.1, an OS-chosen port read from its log, scraping `target` every second. */
async function startPrometheus(executable: string, dir: string, target: string): Promise<Running> {
  const config = path.join(dir, 'prometheus.yml')
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: usagewire-gateway',
      '    metrics_path: /metrics',
      '    static_configs:',
      `      - targets: ['${target}']`,
      '',
    ].join('\n'),
  )
  const child = spawn(
    executable,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      '--web.listen-address=127.0.0.1:0',
      '--log.level=info',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let log = ''
  child.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()))
  let exited = false
  child.once('exit', () => (exited = true))
  const port = await waitFor(
    () => {
      if (exited) throw new Error(`prometheus exited:\n${log}`)
      return /msg="Listening on" address=127\.0\.0\.1:(\d+)/.exec(log)?.[1]
    },
    'prometheus to listen',
    { timeoutMs: 15_000, intervalMs: 50 },
  )
  return { url: `http://127.0.0.1:${port}`, process: child, output: () => log }
}

/** The value of an instant query's single result, or undefined while there is none. */
async function queryValue(url: string, query: string): Promise<number | undefined> {
  const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(query)}`)
  if (!res.ok) return undefined
  const body = (await res.json()) as { data?: { result?: Array<{ value: [number, string] }> } }
  const value = body.data?.result?.[0]?.value[1]
  return value === undefined ? undefined : Number(value)
}

describe.skipIf(!binary && !inCI)('a real Prometheus scraping an example gateway', () => {
  let mock: MockUpstream | undefined
  let gateway: RunningGateway | undefined
  let prometheus: Running | undefined
  const dir = mkdtempSync(path.join(tmpdir(), 'usagewire-prometheus-'))

  afterAll(async () => {
    if (prometheus && prometheus.process.exitCode === null) {
      const exit = new Promise((resolve) => prometheus!.process.once('exit', resolve))
      prometheus.process.kill('SIGTERM')
      await exit
    }
    await gateway?.close()
    await mock?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('stores sum(usagewire_cache_read_input_tokens_total) equal to the records’ cacheRead', async () => {
    expect(binary, 'CI=true: `prometheus` must be on PATH (.ci/run installs it with apt-get)').toBeDefined()
    const records: UsageRecord[] = []
    mock = await startMockUpstream()
    gateway = await startGateway('express', { upstream: mock.url, onUsage: (r) => records.push(r) })
    prometheus = await startPrometheus(binary!, dir, new URL(gateway.url).host)

    // Anthropic streams that read from the provider's prompt cache, one of them with 0s in message_delta.
    const models = ['healthy', 'anthropic-delta-zeros', 'anthropic-zero-start']
    for (const model of models) await send({ kind: 'anthropic', baseURL: gateway.url, model, headers: {} })
    await waitFor(() => records.length === models.length, 'the records')
    const expected = records.reduce((sum, r) => sum + r.usage.cacheRead, 0)
    expect(expected).toBeGreaterThan(0)

    // The first sample becomes queryable only after a few seconds; poll until it has the last scrape's value.
    const deadline = Date.now() + 30_000
    let seen: number | undefined
    while (Date.now() < deadline) {
      seen = await queryValue(prometheus.url, 'sum(usagewire_cache_read_input_tokens_total)')
      if (seen === expected) break
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    expect(seen, `Prometheus log:\n${prometheus.output().slice(-2000)}`).toBe(expected)
    expect(await queryValue(prometheus.url, 'sum(usagewire_requests_total{status="complete"})')).toBe(models.length)
  }, 60_000)
})
