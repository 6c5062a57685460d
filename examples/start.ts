/**
 * `pnpm start [express|koa|fastify|http-proxy-middleware]`: an example gateway (Express unless named) on 127.0.0.1:$PORT (default 8787) until stopped, one log line per
 * usage record. Upstream: the embedded mock, or real providers for the routes whose
 * ANTHROPIC_UPSTREAM / OPENAI_UPSTREAM is set (the client brings its own API key).
 */
import type { UsageRecord } from '@usagewire/core'
import { scenarios, startMockUpstream } from './mock-upstream/index.js'
import { upstreamsFromEnv } from './gateway-options.js'
import { ADAPTERS, DESCRIPTION, isAdapter, startGateway } from './gateways.js'

const HOST = '127.0.0.1'
const PORT = Number(process.env.PORT ?? 8787)

/** `id route dialect model status in/cr/cw/out/rs corrections ms` */
function line(r: UsageRecord): string {
  const u = r.usage
  // The field's last segment is enough to read a fix: `input_tokens:0→2048`.
  const fixes = r.corrections.map((c) => `${c.field.split('.').pop()}:${c.from ?? '∅'}→${c.to}`).join(',')
  return [
    r.id,
    `${r.method} ${r.route}`,
    r.dialect,
    r.model ?? '-',
    r.status +
      (r.final ? '' : '(partial)') +
      (r.passthrough ? `(${r.passthrough.reason}@${r.passthrough.atByte})` : ''),
    `${u.input}/${u.cacheRead}/${u.cacheWrite}/${u.output}/${u.reasoning}`,
    `fixes=${r.corrections.length}${fixes ? `[${fixes}]` : ''}`,
    `${Math.round(r.timing.totalMs)}ms`,
  ].join(' ')
}

async function ledgerFromEnv() {
  const url = process.env.USAGEWIRE_DATABASE_URL
  if (!url) return undefined
  const { default: pg } = await import('pg')
  const { migrate, postgresLedger } = await import('@usagewire/core/postgres')
  const pool = new pg.Pool({ connectionString: url })
  await migrate(pool)
  return postgresLedger({ pool, spillFile: process.env.USAGEWIRE_SPILL_FILE ?? 'usagewire.spill' })
}

async function main() {
  const arg = process.argv.slice(2).find((a) => a !== '--') ?? 'express'
  if (!isAdapter(arg)) {
    console.error(`usage: pnpm start [${ADAPTERS.join('|')}]`)
    process.exit(2)
  }
  const mock = await startMockUpstream()
  const env = upstreamsFromEnv()
  // The proxy's per-request info lines would drown the record lines; keep its warnings and errors.
  const log = { info: () => {}, warn: console.warn, error: console.error }
  // USAGEWIRE_DATABASE_URL=postgres://…: every record also goes to the durable ledger (docs/ledger.md),
  // spilling to USAGEWIRE_SPILL_FILE (default ./usagewire.spill) while the database is away.
  const ledger = await ledgerFromEnv()
  const gateway = await startGateway(
    arg,
    { upstream: mock.url, ...env, onUsage: (r) => console.log(line(r)), log, sinks: ledger ? [ledger] : [] },
    PORT,
    HOST,
  )
  const url = gateway.url

  const names = [...new Set(scenarios.map((s) => s.name))].join(', ')
  console.log(
    [
      `usagewire example gateway (${DESCRIPTION[arg]}) on ${url}`,
      `  /v1/messages                        → ${env.anthropicUpstream ?? `embedded mock ${mock.url}`}`,
      `  /v1/chat/completions, /v1/responses → ${env.openaiUpstream ?? `embedded mock ${mock.url}`}`,
      `  /model/… (Bedrock), /v1beta/…       → embedded mock ${mock.url}`,
      '',
      'Point a client at it:',
      `  Anthropic SDK / Claude Code:  ANTHROPIC_BASE_URL=${url}   (new Anthropic({ baseURL: '${url}' }))`,
      `  OpenAI SDK:                   OPENAI_BASE_URL=${url}/v1   (new OpenAI({ baseURL: '${url}/v1' }))`,
      `  AWS SDK (Bedrock Runtime):    new BedrockRuntimeClient({ endpoint: '${url}', … })`,
      `  @google/genai:                new GoogleGenAI({ apiKey, httpOptions: { baseUrl: '${url}' } })`,
      `  curl -N ${url}/v1/messages -H 'content-type: application/json' -H "x-api-key: $ANTHROPIC_API_KEY" \\`,
      `    -d '{"model":"anthropic-zero-start","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}'`,
      `Metrics (Prometheus text format, from @usagewire/core/prometheus): curl ${url}/metrics`,
      ledger
        ? `Ledger: PostgreSQL at USAGEWIRE_DATABASE_URL (table usagewire_usage)`
        : 'Ledger: off (set USAGEWIRE_DATABASE_URL)',
      `Mock scenarios (pass as "model"; Bedrock's model id, Gemini's model): ${names}`,
      'One line per record: id route dialect model status in/cr/cw/out/rs corrections duration. Ctrl-C stops.',
    ].join('\n'),
  )

  const stop = () => {
    void gateway
      .close()
      .then(() => ledger?.close())
      .then(() => mock.close())
      .then(() => process.exit(0))
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
