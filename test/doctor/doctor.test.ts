/**
 * The doctor end to end: a deliberately broken translating gateway (test/translator: Anthropic Messages
 * in, Bedrock ConverseStream out, its usage bugs) and an honest pass-through gateway, both pointed at the
 * doctor's provider; the exact card rows without and with the usagewire sidecar, the JSON, the exit codes.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { afterEach, describe, expect, it } from 'vitest'
import {
  formatCard,
  openDoctor,
  parseDoctorArgs,
  runDoctorCli,
  type DoctorCard,
  type PhaseCard,
} from '@usagewire/doctor'
import { listen, shut } from '../matrix/upstream.js'
import { startTranslator } from '../translator/index.js'

let open: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  await Promise.all(open.map((o) => o.close()))
  open = []
})

/** A gateway that forwards every request to the provider untouched (but for the status of an error, `errorAs`). */
async function passThrough(providerUrl: string, errorAs?: number) {
  const proxy = createProxyMiddleware({
    target: providerUrl,
    changeOrigin: true,
    ...(errorAs !== undefined && {
      on: {
        proxyRes: (proxyRes: http.IncomingMessage) => {
          if (proxyRes.statusCode === 400) proxyRes.statusCode = errorAs
        },
      },
    }),
  })
  const server = http.createServer((req, res) => void proxy(req, res, () => res.writeHead(502).end()))
  const gateway = { url: await listen(server), close: () => shut(server) }
  open.push(gateway)
  return gateway
}

/** A gateway that forwards every request to the provider, without the Chat request's `stream_options`. */
async function dropsStreamOptions(providerUrl: string) {
  const server = http.createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      const body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown>
      delete body.stream_options
      const upstream = await fetch(`${providerUrl}${req.url}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' })
      for await (const chunk of upstream.body ?? []) res.write(chunk)
      res.end()
    })().catch(() => res.destroy())
  })
  const gateway = { url: await listen(server), close: () => shut(server) }
  open.push(gateway)
  return gateway
}

/** The converse translator, pointed at `providerUrl`. */
async function translator(providerUrl: string) {
  const gateway = await startTranslator({ adapter: 'express', upstream: 'bedrock-converse', providerUrl })
  open.push(gateway)
  return gateway
}

/** A port that was free a moment ago: the CLI's provider listens there, the gateway is told so first. */
async function freePort(): Promise<number> {
  const server = http.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** `scenario/mode/reader` → ✓ or ✗, for one format of one phase. */
const verdicts = (phase: PhaseCard | undefined) =>
  Object.fromEntries(phase!.formats[0]!.rows.map((r) => [`${r.scenario}/${r.mode}/${r.reader}`, r.ok ? '✓' : '✗']))

const STREAM_READERS = ['sdk', 'sdk-0.50.0', 'sdk-0.49', 'claude-code', 'start-only', 'sdk-run']
const ANSWERED = ['plain', 'cache-read', 'cache-write', 'reasoning', 'tool-call']

/** Every row of the Anthropic card: `fixed` scenarios turn ✓ with usagewire except the readers in `stillWrong`. */
function expectedWith(fixed: string[], stillWrong: string[]) {
  const rows: Record<string, string> = {}
  for (const scenario of ANSWERED) {
    const ok = fixed.includes(scenario)
    for (const reader of STREAM_READERS)
      rows[`${scenario}/stream/${reader}`] = ok && !stillWrong.includes(reader) ? '✓' : '✗'
    rows[`${scenario}/create/body`] = ok ? '✓' : '✗'
  }
  rows['error/stream/client'] = '✗'
  rows['error/create/client'] = '✗'
  for (const reader of STREAM_READERS.slice(0, 5))
    rows[`abort/stream/${reader}`] = stillWrong.includes('abort') ? '✗' : '✓'
  return rows
}

describe('a deliberately broken translator (Bedrock ConverseStream upstream)', () => {
  const row = (phase: PhaseCard | undefined, key: string) =>
    phase!.formats[0]!.rows.find((r) => `${r.scenario}/${r.mode}/${r.reader}` === key)!

  it('every row wrong without usagewire; with the sidecar (holding message_start) the rows it can fix turn ✓; the rules it broke named', async () => {
    const doctor = await openDoctor({ providerListen: '127.0.0.1:0' })
    open.push(doctor)
    const gateway = await translator(doctor.provider.url)
    const started = performance.now()
    const card = await doctor.audit({ gateway: gateway.url, clients: ['anthropic'], withUsagewire: true })
    expect(performance.now() - started).toBeLessThan(20_000)
    const [before, after] = card.phases

    // Without usagewire: every reader of every scenario is wrong.
    expect(Object.values(verdicts(before)).every((v) => v === '✗')).toBe(true)
    expect(Object.keys(verdicts(before)).length).toBe(42)
    const anthropic = before!.formats[0]!
    expect(anthropic.upstream).toEqual(['bedrock-converse'])
    // The translator's numbers: input 0, output = the text chunks it forwarded (8), the cache gone.
    expect(row(before, 'cache-read/stream/sdk')).toMatchObject({
      expected: { input: 212, cacheRead: 30433, cacheWrite: 0, output: 104 },
      reported: { input: 0, cacheRead: undefined, cacheWrite: undefined, output: 8 },
      differs: ['input', 'cacheRead', 'output'],
    })
    expect(row(before, 'error/stream/client')).toMatchObject({
      status: 500,
      error: 'HTTP 500',
      note: 'the provider answered 400',
    })
    // Without usagewire no record, so no correlation.
    expect(before!.formats[0]!.rows.some((r) => r.correlation)).toBe(false)
    expect(anthropic.rules.map((r) => r.rule)).toEqual([
      'zero-start',
      'cache-dropped',
      'output-per-chunk',
      'stream-vs-json',
      'ttl-split',
      'error-status',
      'wrong-count',
    ])
    expect(anthropic.rules.find((r) => r.rule === 'zero-start')).toMatchObject({
      peerBugs: [1, 2, 8, 28, 30],
      details: expect.arrayContaining(['plain/stream: message_start says input 0 (provider 1850)']),
    })
    expect(anthropic.rules.find((r) => r.rule === 'output-per-chunk')!.details).toContain(
      'plain/stream: output_tokens 8, the number of content chunks: 8 text (provider 96)',
    )

    // With usagewire, by default holding message_start until the provider's numbers are joined (two-sided):
    // every reader turns ✓, message_start's own and the client that leaves after its first text included;
    // but the tool call, whose arguments the translator drops, cannot be joined by content, and the 500
    // stays a 500.
    expect(after!.sidecar).toMatchObject({
      twoSided: true,
      messageStart: 'hold',
      correlation: ['header', 'content'],
      records: 13,
    })
    expect(verdicts(after)).toEqual(expectedWith(['plain', 'cache-read', 'cache-write', 'reasoning'], []))
    for (const key of ['cache-read/stream/sdk', 'cache-read/stream/start-only', 'cache-read/stream/sdk-0.49'])
      expect(row(after, key).reported, key).toEqual({ input: 212, cacheRead: 30433, cacheWrite: 0, output: 104 })
    // What the record said of each request: joined by content, or not joined, and why.
    expect(row(after, 'cache-read/stream/sdk').correlation).toEqual({ by: 'content' })
    expect(row(after, 'tool-call/stream/sdk').correlation).toEqual({
      by: 'none',
      reason: 'no provider call was matched to it',
    })
    expect(row(after, 'tool-call/create/body').correlation).toMatchObject({ by: 'none' })
    expect(after!.formats[0]!.rules.map((r) => r.rule)).toEqual([
      'zero-start',
      'cache-dropped',
      'output-per-chunk',
      'stream-vs-json',
      'error-status',
    ])
    // No TTL split lost: the held message_start and the JSON body carry the provider's. message_start is
    // right wherever the provider's call was joined.
    expect(after!.formats[0]!.rules.find((r) => r.rule === 'zero-start')!.details).toEqual([
      'tool-call/stream: message_start says input 0 (provider 905)',
    ])
    expect(card.ok).toBe(false)

    // The card as text: side by side, before → after; under the requests the sidecar could not join, why.
    const text = formatCard(card)
    expect(text).toContain(
      'Anthropic Messages · model claude-sonnet-4-6 · the gateway called bedrock-converse · 42 of 42 rows wrong; with usagewire 9 wrong',
    )
    expect(text).toMatch(
      /✗ +→ ✓ +cache-read +stream +SDK ≥ 0\.50\.4 +212\/30433\/0\/104 +0\/—\/—\/8 +212\/30433\/0\/104/,
    )
    expect(text).toMatch(
      /✗ +→ ✓ +cache-read +stream +message_start only +212\/30433\/0\/104 +0\/—\/—\/8 +212\/30433\/0\/104/,
    )
    expect(text).toMatch(
      /✗ +→ ✗ +tool-call +stream +SDK 1\.13\.0 \(run\) .*\n +↳ usagewire did not join it: no provider call was matched to it\n +✗ +→ ✗ +tool-call +create .*\n +↳ usagewire did not join it: no provider call was matched to it\n +✗ +→ ✗ +error +stream/,
    )
    // Once per request, and never for the error scenario (usagewire never changes a status).
    expect(text.match(/↳/g)).toHaveLength(2)
    expect(text).not.toContain('hint:')
    expect(text.trimEnd().endsWith('✗ some rows are wrong')).toBe(true)
  }, 30_000)

  it("with --message-start patch-final, message_start leaves with the gateway's zeros, and the card says hold fills it", async () => {
    const doctor = await openDoctor({ providerListen: '127.0.0.1:0' })
    open.push(doctor)
    const gateway = await translator(doctor.provider.url)
    const card = await doctor.audit({
      gateway: gateway.url,
      clients: ['anthropic'],
      withUsagewire: true,
      messageStart: 'patch-final',
    })
    const after = card.phases[1]
    expect(after!.sidecar).toMatchObject({ twoSided: true, messageStart: 'patch-final' })
    // The final message_delta carries the provider's numbers, so every reader of it turns ✓; message_start
    // still leaves with zeros (SDK ≤ 0.49, message_start-only readers, the client that leaves early).
    expect(verdicts(after)).toEqual(
      expectedWith(['plain', 'cache-read', 'cache-write', 'reasoning'], ['sdk-0.49', 'start-only', 'abort']),
    )
    expect(row(after, 'cache-read/stream/start-only').reported).toMatchObject({ input: 0, output: 104 })
    expect(after!.formats[0]!.rules.map((r) => r.rule)).toEqual([
      'zero-start',
      'cache-dropped',
      'output-per-chunk',
      'stream-vs-json',
      'ttl-split',
      'error-status',
    ])
    // message_start leaves before the provider's split is known.
    expect(after!.formats[0]!.rules.find((r) => r.rule === 'ttl-split')!.details).toEqual([
      'cache-write/stream: message_start has no cache_creation (5m 1024, 1h 3072): priced at the 5m rate',
    ])
    const text = formatCard(card)
    expect(text).toContain('with usagewire 22 wrong')
    expect(text).toMatch(/✗ +→ ✗ +cache-read +stream +message_start only +212\/30433\/0\/104 +0\/—\/—\/8 +0\/—\/—\/104/)
    expect(text).toContain(
      "  hint: under --message-start patch-final, message_start leaves before the provider's numbers are joined;\n" +
        '        the default, hold, fills it',
    )
    // The client that left after its first text: the sidecar joined no provider call to it, and says so.
    expect(row(after, 'abort/stream/sdk').correlation).toMatchObject({ by: 'none' })
    expect(text).toMatch(/✗ +→ ✗ +abort +stream +message_start only .*\n +↳ usagewire did not join it: /)
  }, 30_000)

  it('a client format the gateway does not serve: every request failed, and the provider saw no call', async () => {
    const doctor = await openDoctor({ providerListen: '127.0.0.1:0' })
    open.push(doctor)
    const gateway = await translator(doctor.provider.url)
    const card = await doctor.audit({ gateway: gateway.url, clients: ['openai-chat'], scenarios: ['plain'] })
    const chat = card.phases[0]!.formats[0]!
    expect(chat.upstream).toEqual([])
    expect(chat.rows.map((r) => [r.mode, r.reader, r.ok, r.error])).toEqual([
      ['stream+usage', 'client', false, 'HTTP 404'],
      ['stream', 'client', false, 'HTTP 404'],
      ['create', 'client', false, 'HTTP 404'],
    ])
    expect(chat.rules).toEqual([
      {
        rule: 'request-failed',
        title: 'a request failed at the gateway',
        peerBugs: [],
        details: [
          'plain/stream+usage: HTTP 404; the provider saw no call',
          'plain/stream: HTTP 404; the provider saw no call',
          'plain/create: HTTP 404; the provider saw no call',
        ],
      },
    ])
  })
})

describe('an honest pass-through gateway', () => {
  it('every row ✓ for every client format, without and with usagewire; the JSON card', async () => {
    const doctor = await openDoctor({ providerListen: '127.0.0.1:0' })
    open.push(doctor)
    const gateway = await passThrough(doctor.provider.url)
    const card: DoctorCard = JSON.parse(
      JSON.stringify(await doctor.audit({ gateway: gateway.url, withUsagewire: true })),
    )
    expect(card.ok).toBe(true)
    for (const phase of card.phases) {
      expect(phase.formats.map((f) => [f.format, f.upstream, f.rows.length, f.rules])).toEqual([
        ['anthropic', ['anthropic-messages'], 42, []],
        ['openai-chat', ['openai-chat'], 30, []],
        ['openai-responses', ['openai-responses'], 18, []],
      ])
      for (const format of phase.formats)
        for (const row of format.rows)
          expect(row, `${row.scenario}/${row.mode}/${row.reader}`).toMatchObject({ ok: true })
    }
    // The shape the JSON carries.
    expect(Object.keys(card).sort()).toEqual(['gateway', 'ms', 'ok', 'phases', 'provider', 'sdk', 'waitedMs'])
    expect(card.waitedMs).toBe(0)
    expect(card.provider).toEqual({
      url: doctor.provider.url,
      anthropic: doctor.provider.url,
      openai: `${doctor.provider.url}/v1`,
      bedrock: doctor.provider.url,
      gemini: doctor.provider.url,
    })
    const chat = card.phases[0]!.formats[1]!
    expect(
      chat.rows.find((r) => r.scenario === 'cache-read' && r.mode === 'stream+usage' && r.reader === 'chat-sdk'),
    ).toEqual({
      scenario: 'cache-read',
      mode: 'stream+usage',
      reader: 'chat-sdk',
      label: 'SDK: last usage block',
      ok: true,
      status: 200,
      expected: { prompt: 30645, cached: 30433, cacheWrite: 0, completion: 104, reasoning: 0, total: 30749 },
      reported: { prompt: 30645, cached: 30433, completion: 104, reasoning: 0, total: 30749 },
      fields: ['prompt', 'cached', 'completion', 'reasoning', 'total'],
      differs: [],
    })
    expect(card.phases[1]!.sidecar).toMatchObject({ twoSided: true, messageStart: 'hold', records: 46 })
    // The gateway passes the sidecar's correlation header on: every request joined by it (the record says so).
    for (const format of card.phases[1]!.formats)
      for (const row of format.rows)
        expect(row.correlation, `${row.scenario}/${row.mode}/${row.reader}`).toEqual({ by: 'header' })
  }, 30_000)

  it("the provider's 400 as a 429 (or a 408) is wrong: SDKs retry it; as a 422 it is right", async () => {
    const doctor = await openDoctor({ providerListen: '127.0.0.1:0' })
    open.push(doctor)
    const audit = async (status: number) => {
      const gateway = await passThrough(doctor.provider.url, status)
      const card = await doctor.audit({ gateway: gateway.url, clients: ['anthropic'], scenarios: ['error'] })
      return card.phases[0]!.formats[0]!
    }
    for (const status of [429, 408]) {
      const card = await audit(status)
      expect(card.rows.map((r) => [r.mode, r.ok, r.error, r.differs])).toEqual([
        ['stream', false, `HTTP ${status}`, ['status']],
        ['create', false, `HTTP ${status}`, ['status']],
      ])
      expect(card.rules).toEqual([
        {
          rule: 'error-status',
          title: "the provider's 4xx reached the client as a success or a status SDKs retry",
          peerBugs: [],
          details: [
            `error/stream: HTTP ${status}: the provider answered 400; SDKs retry it`,
            `error/create: HTTP ${status}: the provider answered 400; SDKs retry it`,
          ],
        },
      ])
    }
    const other = await audit(422)
    expect(other.rows.map((r) => [r.mode, r.ok, r.error])).toEqual([
      ['stream', true, 'HTTP 422'],
      ['create', true, 'HTTP 422'],
    ])
    expect(other.rules).toEqual([])
  })
})

describe('a gateway that drops stream_options from Chat requests', () => {
  it('the stream the client asked usage for gets none, and the card says the gateway never asked the provider', async () => {
    const doctor = await openDoctor({ providerListen: '127.0.0.1:0' })
    open.push(doctor)
    const gateway = await dropsStreamOptions(doctor.provider.url)
    const card = await doctor.audit({ gateway: gateway.url, clients: ['openai-chat'], scenarios: ['plain'] })
    const chat = card.phases[0]!.formats[0]!
    expect(chat.rows.map((r) => [r.mode, r.reader, r.ok, r.error])).toEqual([
      ['stream+usage', 'chat-sdk', false, 'no usage'],
      ['stream+usage', 'sdk-run', false, 'no usage'],
      // The client that did not ask is owed nothing: the gateway passed its choice on.
      ['stream', 'chat-sdk', true, undefined],
      ['stream', 'sdk-run', true, undefined],
      ['create', 'body', true, undefined],
    ])
    expect(chat.rules).toEqual([
      {
        rule: 'no-stream-usage-requested',
        title: 'the gateway never asked the provider for streamed usage',
        peerBugs: [32],
        details: [
          'plain/stream+usage: the gateway streamed Chat Completions with no stream_options: the provider sent no usage',
        ],
      },
      {
        rule: 'final-missing',
        title: 'the final usage block is missing',
        peerBugs: [12, 14, 32, 38],
        details: ['plain/stream+usage: no chunk carries usage, though the client asked with include_usage'],
      },
    ])
    // What the provider saw: the streamed Chat request's body without stream_options.
    const streamed = doctor.calls.filter((c) => c.dialect === 'openai-chat' && c.streaming)
    expect(streamed).toHaveLength(2)
    for (const call of streamed) expect(call.body).toMatchObject({ stream: true, model: 'gpt-4.1' })
    expect(streamed.some((call) => call.body && 'stream_options' in call.body)).toBe(false)
  })
})

describe('audits in one session', () => {
  it('two audits at once against two gateways on one provider: each counts only its own provider calls', async () => {
    const doctor = await openDoctor({ providerListen: '127.0.0.1:0' })
    open.push(doctor)
    const broken = await translator(doctor.provider.url)
    const honest = await passThrough(doctor.provider.url)
    const audit = (gateway: string) =>
      doctor.audit({ gateway, clients: ['anthropic'], scenarios: ['plain', 'cache-read'], withUsagewire: true })
    const [a, b] = await Promise.all([audit(broken.url), audit(honest.url)])

    // Each card names only the dialect its own gateway called, in both phases.
    expect(a.phases.map((p) => p.formats[0]!.upstream)).toEqual([['bedrock-converse'], ['bedrock-converse']])
    expect(b.phases.map((p) => p.formats[0]!.upstream)).toEqual([['anthropic-messages'], ['anthropic-messages']])
    expect(a.phases.map((p) => p.ok)).toEqual([false, true])
    expect(b.phases.map((p) => p.ok)).toEqual([true, true])
    expect(verdicts(a.phases[0])['cache-read/stream/sdk']).toBe('✗')

    // Every provider call carries its audit's run id: two ids, each with one dialect and 8 calls (2 scenarios,
    // streamed and not, in 2 phases).
    const byRun = new Map<string, Set<string>>()
    const count = new Map<string, number>()
    for (const call of doctor.calls) {
      const run = call.tag.split('-')[0]!
      byRun.set(run, (byRun.get(run) ?? new Set()).add(call.dialect!))
      count.set(run, (count.get(run) ?? 0) + 1)
    }
    expect([...byRun.values()].map((d) => [...d]).sort()).toEqual([['anthropic-messages'], ['bedrock-converse']])
    expect([...count.values()]).toEqual([8, 8])
  }, 30_000)

  it('back to back against one provider: the second audit counts none of the first one’s calls', async () => {
    const doctor = await openDoctor({ providerListen: '127.0.0.1:0' })
    open.push(doctor)
    const broken = await translator(doctor.provider.url)
    const honest = await passThrough(doctor.provider.url)
    const first = await doctor.audit({ gateway: broken.url, clients: ['anthropic'], scenarios: ['plain'] })
    const second = await doctor.audit({ gateway: honest.url, clients: ['anthropic'], scenarios: ['plain'] })
    expect(first.phases[0]!.formats[0]!.upstream).toEqual(['bedrock-converse'])
    expect(second.phases[0]!.formats[0]!.upstream).toEqual(['anthropic-messages'])
    expect(second.ok).toBe(true)
  })
})

describe('the CLI', () => {
  const run = async (argv: string[]) => {
    let stdout = ''
    let stderr = ''
    const code = await runDoctorCli(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) })
    return { code, stdout, stderr }
  }

  it('parses its flags', () => {
    expect(
      parseDoctorArgs([
        '--gateway',
        'http://127.0.0.1:4000',
        '--model',
        'anthropic=claude-via-bedrock',
        '--model',
        'openai-chat=gpt-x',
        '--clients',
        'anthropic, openai-chat',
        '--scenarios',
        'plain,abort',
        '--with-usagewire',
        '--message-start',
        'hold',
        '--api-key',
        'sk-1',
        '--timeout-ms',
        '5000',
        '--wait-ms',
        '100',
        '--json',
      ]),
    ).toEqual({
      gateway: 'http://127.0.0.1:4000',
      providerListen: '127.0.0.1:8790',
      models: { anthropic: 'claude-via-bedrock', 'openai-chat': 'gpt-x' },
      clients: ['anthropic', 'openai-chat'],
      scenarios: ['plain', 'abort'],
      withUsagewire: true,
      messageStart: 'hold',
      apiKey: 'sk-1',
      timeoutMs: 5000,
      waitMs: 100,
      json: true,
    })
    expect(() => parseDoctorArgs(['--gateway', 'x', '--scenarios', 'plain,stampede'])).toThrow(
      'unknown scenario "stampede"',
    )
    expect(() => parseDoctorArgs(['--gateway', 'x', '--timeout-ms', '0'])).toThrow('--timeout-ms')
  })

  it('exit 2 on a usage error', async () => {
    expect((await run([])).code).toBe(2)
    expect((await run(['--gateway', 'http://127.0.0.1:1', '--clients', 'grpc'])).stderr).toContain(
      'unknown format "grpc"',
    )
    expect((await run(['--gateway', 'http://127.0.0.1:1', '--model', 'gpt-4.1'])).code).toBe(2)
    expect((await run(['--gateway', 'http://127.0.0.1:1', '--provider-listen', 'nowhere:port'])).code).toBe(2)
    const help = await run(['doctor', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('usage: usagewire doctor --gateway URL')
  })

  it('exit 2 when the gateway cannot be reached', async () => {
    const port = await freePort()
    const result = await run(['--gateway', `http://127.0.0.1:${port}`, '--provider-listen', '127.0.0.1:0'])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(`cannot reach the gateway at http://127.0.0.1:${port}`)
  })

  it('exit 0 for the honest gateway, the card as JSON on stdout and the provider line on stderr', async () => {
    const port = await freePort()
    const gateway = await passThrough(`http://127.0.0.1:${port}`)
    const result = await run([
      '--gateway',
      gateway.url,
      '--provider-listen',
      `127.0.0.1:${port}`,
      '--clients',
      'openai-chat',
      '--json',
    ])
    expect(result.stderr).toBe(
      `usagewire doctor: point the gateway's providers here: Anthropic http://127.0.0.1:${port} · OpenAI http://127.0.0.1:${port}/v1 · Bedrock runtime endpoint http://127.0.0.1:${port} · Gemini http://127.0.0.1:${port}\n`,
    )
    const card = JSON.parse(result.stdout) as DoctorCard
    expect(card.ok).toBe(true)
    expect(card.phases[0]!.formats.map((f) => f.format)).toEqual(['openai-chat'])
    expect(result.code).toBe(0)
  }, 20_000)

  it("--wait-ms: a gateway started after the provider; the wait is not the audit's time", async () => {
    const [providerPort, gatewayPort] = [await freePort(), await freePort()]
    const began = performance.now()
    const result = run([
      '--gateway',
      `http://127.0.0.1:${gatewayPort}`,
      '--provider-listen',
      `127.0.0.1:${providerPort}`,
      '--clients',
      'anthropic',
      '--scenarios',
      'plain',
      '--wait-ms',
      '10000',
      '--json',
    ])
    await new Promise((resolve) => setTimeout(resolve, 400))
    // The provider is up before the gateway is: a gateway that calls it at start-up finds it.
    expect((await fetch(`http://127.0.0.1:${providerPort}/inference-profiles`)).status).toBe(200)
    await new Promise((resolve) => setTimeout(resolve, 800))
    const proxy = createProxyMiddleware({ target: `http://127.0.0.1:${providerPort}`, changeOrigin: true })
    const server = http.createServer((req, res) => void proxy(req, res, () => res.writeHead(502).end()))
    await new Promise<void>((resolve) => server.listen(gatewayPort, '127.0.0.1', resolve))
    open.push({ close: () => shut(server) })
    const { code, stdout } = await result
    const elapsed = performance.now() - began
    const card = JSON.parse(stdout) as DoctorCard
    expect(card.ok).toBe(true)
    expect(card.phases[0]!.formats[0]!.rows).toHaveLength(7)
    // The wait (the gateway came up after some 1.2 s) is reported apart: the audit's time leaves it out.
    expect(card.waitedMs).toBeGreaterThanOrEqual(900)
    expect(card.ms + card.waitedMs).toBeLessThanOrEqual(elapsed)
    expect(formatCard(card)).toMatch(/ · 2 requests in \d+\.\d s \(after \d+\.\d s waiting for the gateway\)\n/)
    expect(code).toBe(0)
  }, 20_000)

  it('exit 1 for the broken translator, the card as text', async () => {
    const port = await freePort()
    const gateway = await translator(`http://127.0.0.1:${port}`)
    const result = await run([
      '--gateway',
      gateway.url,
      '--provider-listen',
      `127.0.0.1:${port}`,
      '--clients',
      'anthropic',
      '--scenarios',
      'plain,error',
      '--model',
      'anthropic=claude-haiku-4-5',
    ])
    expect(result.code).toBe(1)
    expect(result.stdout).toContain("point the gateway's providers here")
    expect(result.stdout).toContain(
      'Anthropic Messages · model claude-haiku-4-5 · the gateway called bedrock-converse · 9 of 9 rows wrong',
    )
    expect(result.stdout).toMatch(/✗ +plain +stream +SDK ≥ 0\.50\.4 +1850\/0\/0\/96 +0\/—\/—\/8/)
    expect(result.stdout).toMatch(/✗ +error +create +the client +HTTP 4xx not retried, no usage +HTTP 500/)
  }, 20_000)
})
