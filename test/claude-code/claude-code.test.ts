/**
 * Claude Code, run for real, behind an Anthropic-speaking gateway: the token counts it exports
 * (`claude_code.token.usage`, and the `usage` of its JSON result) are what a team's dashboards show.
 * An honest upstream proves the harness; a translating gateway in front of a Bedrock Converse provider
 * reproduces docs/peer-bugs.md row 1 (0 input on `message_start`, Claude Code reports 0 input), and
 * usagewire with the upstream tap makes Claude Code report the provider's true numbers. Claude Code
 * accepts zstd: behind a gateway with usagewire, the provider is asked only for codings usagewire reads.
 */
import http from 'node:http'
import express from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { UsageRecord } from '@usagewire/core'
import { readableAcceptEncoding, tapUpstream } from '@usagewire/core/node'
import { usagewire } from '@usagewire/express'
import type { TrueUsage } from '../../examples/mock-upstream/types.js'
import { jsonUsage, probeClaudeCode, runClaudeCode, type ClaudeCodeRun } from '../clients/claude-code.js'
import { listen, shut, waitFor } from '../matrix/upstream.js'
import { startMockAnthropic } from '../peers/mock-anthropic.js'
import {
  startProvider,
  startTranslator,
  TEXT,
  TEXT_DELTAS,
  type GatewayAdapter,
  type Truth,
} from '../translator/index.js'

const TRUTH: Truth = { input: 1234, cacheRead: 3000, cacheWrite: 200, output: 56 }
/** What Claude Code reports for the truth: its `cacheCreation` is the cache write. */
const REPORTED = { input: 1234, cacheRead: 3000, cacheCreation: 200, output: 56 }

const probe = await probeClaudeCode()
if (!probe.ok) console.warn(`claude-code tests skipped: ${probe.reason}`)

/** A run that must have succeeded: on failure, the assertion shows Claude Code's stderr. */
function expectSuccess(run: ClaudeCodeRun) {
  expect(run.exitCode, `claude exited ${run.exitCode}: ${run.stderr}`).toBe(0)
  expect(run.json).toMatchObject({ type: 'result', is_error: false })
}

/**
 * An honest first-party Anthropic upstream: complete usage on `message_start`, cumulative totals on
 * `message_delta` (docs/dialects/anthropic-messages.md#where-usage-rides), `truth` on every answer.
 */
const startHonestUpstream = (truth: TrueUsage) =>
  startMockAnthropic({ answer: () => ({ text: 'Hello from the honest upstream.', usage: truth }) })

if (!probe.ok && process.env.CI === 'true') {
  it('runs the claude binary', () => {
    throw new Error(`Claude Code cannot run here: ${probe.reason}`)
  })
}

describe.skipIf(!probe.ok)('Claude Code (the real binary) behind a gateway', () => {
  it('reports exactly what an honest upstream sent (the harness itself)', async () => {
    const upstream = await startHonestUpstream({ ...TRUTH, reasoning: 0 })
    try {
      const run = await runClaudeCode({ baseUrl: upstream.url })
      expectSuccess(run)
      expect(upstream.requests.length).toBe(1)
      expect(upstream.requests[0]!.body).toMatchObject({ stream: true })
      expect(run.metrics).toEqual(REPORTED)
      expect(jsonUsage(run)).toEqual(REPORTED)
    } finally {
      await upstream.close()
    }
  })

  it('through an Express + http-proxy-middleware gateway with usagewire: the provider is asked only for codings usagewire reads', async () => {
    const upstream = await startHonestUpstream({ ...TRUTH, reasoning: 0 })
    const records: UsageRecord[] = []
    let sent: string | undefined
    const app = express()
    app.use((req, _res, next) => {
      sent = req.headers['accept-encoding']
      next()
    })
    app.use(usagewire({ onUsage: (record) => void records.push(record) }))
    app.use(createProxyMiddleware({ target: upstream.url, changeOrigin: true }))
    const server = http.createServer(app)
    try {
      const run = await runClaudeCode({ baseUrl: await listen(server) })
      expectSuccess(run)
      expect(run.metrics).toEqual(REPORTED)
      // Claude Code accepts zstd, which Node 20 cannot decode: the provider must not be asked for it there.
      expect(sent).toMatch(/\bzstd\b/)
      expect(upstream.requests[0]!.headers['accept-encoding']).toBe(readableAcceptEncoding(sent!) ?? sent)
      await waitFor(() => records.length > 0, 'the usage record')
      expect(records[0]!.usage).toMatchObject(TRUTH)
    } finally {
      await shut(server)
      await upstream.close()
    }
  })

  describe('through a translating gateway to Bedrock Converse', () => {
    let provider: Awaited<ReturnType<typeof startProvider>>
    beforeAll(async () => {
      provider = await startProvider(TRUTH)
    })
    afterAll(async () => {
      await provider?.close()
    })

    it('without usagewire: Claude Code reports 0 input (the bug)', async () => {
      const translator = await startTranslator({
        adapter: 'express',
        upstream: 'bedrock-converse',
        providerUrl: provider.url,
      })
      try {
        const run = await runClaudeCode({ baseUrl: translator.url })
        expectSuccess(run)
        expect(run.json).toMatchObject({ result: TEXT })
        // Zeros on message_start and, as output, the number of text chunks the translator forwarded (4).
        expect(run.metrics).toEqual({ input: 0, cacheRead: 0, cacheCreation: 0, output: TEXT_DELTAS.length })
        expect(jsonUsage(run)).toEqual(run.metrics)
      } finally {
        await translator.close()
      }
    })

    describe('with usagewire and the upstream tap', () => {
      let tap: { close(): void }
      beforeAll(() => {
        tap = tapUpstream({ maxWaitMs: 1000 })
      })
      afterAll(() => tap?.close())

      it.each<GatewayAdapter>(['express', 'koa', 'fastify', 'http-proxy-middleware'])(
        "%s: Claude Code reports the provider's numbers",
        async (adapter) => {
          const translator = await startTranslator({
            adapter,
            upstream: 'bedrock-converse',
            providerUrl: provider.url,
            usagewire: {},
          })
          try {
            const run = await runClaudeCode({ baseUrl: translator.url })
            expectSuccess(run)
            expect(run.json).toMatchObject({ result: TEXT })
            expect(run.metrics).toEqual(REPORTED)
            expect(jsonUsage(run)).toEqual(REPORTED)
            // One request, one record, and it agrees: the truth, read from the gateway's call to the provider.
            await waitFor(() => translator.records.length > 0, 'the usage record')
            expect(translator.records.length).toBe(1)
            const [record] = translator.records
            expect(record!.usage).toMatchObject(TRUTH)
            expect(record!.sources.input).toMatch(/^tap:/)
          } finally {
            await translator.close()
          }
        },
      )
    })
  })
})
