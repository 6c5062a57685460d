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

/** A gateway that forwards every request to the provider untouched. */
async function passThrough(providerUrl: string) {
  const proxy = createProxyMiddleware({ target: providerUrl, changeOrigin: true })
  const server = http.createServer((req, res) => void proxy(req, res, () => res.writeHead(502).end()))
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
  it('every row wrong without usagewire; with the sidecar the rows it can fix turn ✓; the rules it broke named', async () => {
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
    const row = (phase: PhaseCard | undefined, key: string) =>
      phase!.formats[0]!.rows.find((r) => `${r.scenario}/${r.mode}/${r.reader}` === key)!
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

    // With usagewire (two-sided, patch-final): the final message_delta carries the provider's numbers, so every
    // reader of it turns ✓; message_start still leaves with zeros (SDK ≤ 0.49, message_start-only readers, the
    // client that leaves early); the tool call, whose arguments the translator drops, cannot be joined by
    // content; the 500 stays a 500.
    expect(after!.sidecar).toMatchObject({
      twoSided: true,
      messageStart: 'patch-final',
      correlation: ['header', 'content'],
    })
    expect(verdicts(after)).toEqual(
      expectedWith(['plain', 'cache-read', 'cache-write', 'reasoning'], ['sdk-0.49', 'start-only', 'abort']),
    )
    expect(row(after, 'cache-read/stream/sdk').reported).toEqual({
      input: 212,
      cacheRead: 30433,
      cacheWrite: 0,
      output: 104,
    })
    expect(row(after, 'cache-read/stream/start-only').reported).toMatchObject({ input: 0, output: 104 })
    expect(after!.formats[0]!.rules.map((r) => r.rule)).toEqual([
      'zero-start',
      'cache-dropped',
      'output-per-chunk',
      'stream-vs-json',
      'ttl-split',
      'error-status',
    ])
    expect(card.ok).toBe(false)

    // The card as text: side by side, before → after.
    const text = formatCard(card)
    expect(text).toContain(
      'Anthropic Messages · model claude-sonnet-4-6 · the gateway called bedrock-converse · 42 of 42 rows wrong; with usagewire 22 wrong',
    )
    expect(text).toMatch(
      /✗ +→ ✓ +cache-read +stream +SDK ≥ 0\.50\.4 +212\/30433\/0\/104 +0\/—\/—\/8 +212\/30433\/0\/104/,
    )
    expect(text).toMatch(/✗ +→ ✗ +cache-read +stream +message_start only +212\/30433\/0\/104 +0\/—\/—\/8 +0\/—\/—\/104/)
    expect(text).toContain('hint: message_start leaves before')
    expect(text.trimEnd().endsWith('✗ some rows are wrong')).toBe(true)
  }, 30_000)

  it("with --message-start hold, message_start carries the provider's numbers too", async () => {
    const doctor = await openDoctor({ providerListen: '127.0.0.1:0' })
    open.push(doctor)
    const gateway = await translator(doctor.provider.url)
    const card = await doctor.audit({
      gateway: gateway.url,
      clients: ['anthropic'],
      scenarios: ['cache-read'],
      withUsagewire: true,
      messageStart: 'hold',
    })
    expect(Object.values(verdicts(card.phases[0])).every((v) => v === '✗')).toBe(true)
    expect(Object.values(verdicts(card.phases[1])).every((v) => v === '✓')).toBe(true)
  }, 20_000)
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
    expect(Object.keys(card).sort()).toEqual(['gateway', 'ms', 'ok', 'phases', 'provider', 'sdk'])
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
    expect(card.phases[1]!.sidecar).toMatchObject({ twoSided: true, records: 46 })
  }, 30_000)
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

  it('--wait-ms: a gateway started after the provider', async () => {
    const [providerPort, gatewayPort] = [await freePort(), await freePort()]
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
    ])
    await new Promise((resolve) => setTimeout(resolve, 400))
    // The provider is up before the gateway is: a gateway that calls it at start-up finds it.
    expect((await fetch(`http://127.0.0.1:${providerPort}/inference-profiles`)).status).toBe(200)
    const proxy = createProxyMiddleware({ target: `http://127.0.0.1:${providerPort}`, changeOrigin: true })
    const server = http.createServer((req, res) => void proxy(req, res, () => res.writeHead(502).end()))
    await new Promise<void>((resolve) => server.listen(gatewayPort, '127.0.0.1', resolve))
    open.push({ close: () => shut(server) })
    const { code, stdout } = await result
    expect(stdout).toContain('all 7 rows right')
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
    expect(result.stdout).toMatch(/✗ +error +create +the client +HTTP 4xx, no usage +HTTP 500/)
  }, 20_000)
})
