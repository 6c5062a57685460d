/**
 * `pnpm demo [express|koa|fastify|http-proxy-middleware|all]`: the embedded mock upstream, an example
 * gateway in front of it (Express unless named; `all` runs each in turn), and one streaming
 * request per scenario through the gateway with the official SDKs. For each, the table shows the
 * usage as the upstream sent it, as the client received it, and the usagewire record, each
 * checked against the scenario's true usage. Exits 1 if any request failed or any usage differs from the truth.
 *
 * Always runs on the mock (ANTHROPIC_UPSTREAM / OPENAI_UPSTREAM are for start.ts): the SDKs
 * here send a dummy key.
 */
import type { UsageRecord } from '@usagewire/core'
import { startMockUpstream, findScenario, type MockDialect, type MockExchange } from './mock-upstream/index.js'
import { send, type ClientKind } from './clients.js'
import { LEGEND, buckets, canonicalFromClient, compact, recordSummary, sameBuckets, upstreamUsage } from './format.js'
import { ADAPTERS, DESCRIPTION, isAdapter, startGateway, type Adapter } from './gateways.js'

interface Case {
  label: string
  scenario: string
  client: ClientKind
  gzip?: boolean
}

const DIALECT: Record<ClientKind, MockDialect> = {
  anthropic: 'anthropic-messages',
  'anthropic-0.50.1': 'anthropic-messages',
  'openai-chat': 'openai-chat',
  'openai-responses': 'openai-responses',
  bedrock: 'bedrock-invoke',
  gemini: 'gemini',
}

const CASES: Case[] = [
  { label: 'messages healthy', scenario: 'healthy', client: 'anthropic' },
  { label: 'anthropic-zero-start', scenario: 'anthropic-zero-start', client: 'anthropic' },
  { label: 'anthropic-delta-zeros', scenario: 'anthropic-delta-zeros', client: 'anthropic' },
  // The same rewrite inside a gzip body the upstream flushes event by event.
  { label: '  same, gzip', scenario: 'anthropic-delta-zeros', client: 'anthropic', gzip: true },
  { label: 'anthropic-delta-output-only', scenario: 'anthropic-delta-output-only', client: 'anthropic' },
  { label: '  same, sdk 0.50.1', scenario: 'anthropic-delta-output-only', client: 'anthropic-0.50.1' },
  { label: 'chat healthy', scenario: 'healthy', client: 'openai-chat' },
  { label: 'chat-anthropic-fields', scenario: 'chat-anthropic-fields', client: 'openai-chat' },
  { label: 'chat-usage-on-finish-chunk', scenario: 'chat-usage-on-finish-chunk', client: 'openai-chat' },
  { label: 'responses healthy', scenario: 'healthy', client: 'openai-responses' },
  { label: 'responses-cached', scenario: 'responses-cached', client: 'openai-responses' },
  { label: 'responses-anthropic-fields', scenario: 'responses-anthropic-fields', client: 'openai-responses' },
  { label: 'bedrock healthy', scenario: 'healthy', client: 'bedrock' },
  { label: 'bedrock-zero-start', scenario: 'bedrock-zero-start', client: 'bedrock' },
  { label: 'gemini healthy', scenario: 'healthy', client: 'gemini' },
  { label: 'gemini-last-drops-cache', scenario: 'gemini-last-drops-cache', client: 'gemini' },
]

const RECORD_WAIT_MS = 2000

async function main(adapter: Adapter): Promise<number> {
  const exchanges = new Map<string, MockExchange>()
  const mock = await startMockUpstream({
    onResponse: (x) => {
      const tag = x.requestHeaders['x-demo-tag']
      if (typeof tag === 'string') exchanges.set(tag, x)
    },
  })
  const records: UsageRecord[] = []
  const gateway = await startGateway(adapter, { upstream: mock.url, onUsage: (r) => records.push(r) })
  const gatewayUrl = gateway.url

  const mark = (ok: boolean) => (ok ? '✓' : '✗')
  const lines: string[] = [
    `usagewire demo: SDK → gateway ${gatewayUrl} (${DESCRIPTION[adapter]}) → mock ${mock.url}`,
    LEGEND,
    "record = usagewire record in/cr/cw/out/rs; ✓/✗ = equals the scenario's true usage (client: read by the dialect's documented rules)",
    '',
    `${'scenario'.padEnd(29)}${'upstream sent'.padEnd(70)}`,
    `${''.padEnd(29)}${'→ client received (SDK)'.padEnd(70)}record`,
  ]
  let failures = 0

  for (const [i, c] of CASES.entries()) {
    const tag = `demo-${i}`
    const dialect = DIALECT[c.client]
    const truth = findScenario(dialect, c.scenario).truth
    const before = records.length
    let client: string
    let clientOk = false
    try {
      const usage = await send({
        kind: c.client,
        baseURL: gatewayUrl,
        model: c.scenario,
        headers: { 'x-demo-tag': tag, ...(c.gzip ? { 'x-mock-gzip': '1' } : {}) },
      })
      clientOk = sameBuckets(canonicalFromClient(dialect, usage), truth)
      if (!clientOk) failures++
      client = `${compact(usage)} ${mark(clientOk)}`
    } catch (err) {
      failures++
      client = `FAILED: ${err instanceof Error ? err.message : String(err)}`.slice(0, 68)
    }
    const record = await waitFor(() => records[before], RECORD_WAIT_MS)
    const exchange = exchanges.get(tag)
    let recordText = 'no record'
    if (record) {
      const ok = sameBuckets(record.usage, truth)
      if (!ok) failures++
      recordText = `${recordSummary(record)} ${mark(ok)}${ok ? '' : ` (true ${buckets(truth)})`}`
    } else {
      failures++
    }
    lines.push(`${c.label.padEnd(29)}${exchange ? upstreamUsage(dialect, exchange.body) : 'upstream not reached'}`)
    lines.push(`${''.padEnd(29)}${`→ ${client}`.padEnd(70)}${recordText}`)
  }

  lines.push(
    '',
    failures === 0
      ? `all ${CASES.length} requests completed, client and record equal the true usage`
      : `${failures} failure(s)`,
  )
  console.log(lines.map((l) => l.trimEnd()).join('\n'))

  await gateway.close()
  await mock.close()
  return failures === 0 ? 0 : 1
}

async function waitFor<T>(get: () => T | undefined, ms: number): Promise<T | undefined> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = get()
    if (value !== undefined || Date.now() >= deadline) return value
    await new Promise((r) => setTimeout(r, 10))
  }
}

async function run(): Promise<number> {
  const arg = process.argv.slice(2).find((a) => a !== '--')
  if (arg !== undefined && arg !== 'all' && !isAdapter(arg)) {
    console.error(`usage: pnpm demo [${[...ADAPTERS, 'all'].join('|')}]`)
    return 2
  }
  let code = 0
  for (const adapter of arg === 'all' ? ADAPTERS : [arg ?? 'express']) {
    if (arg === 'all') console.log(`\n── ${adapter} ──`)
    code = Math.max(code, await main(adapter))
  }
  return code
}

run().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
