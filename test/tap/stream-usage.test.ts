/**
 * ensureStreamUsage end to end, with the openai SDK as the client: a streaming Chat request without
 * `stream_options.include_usage` reaches the upstream with it, the client sees no usage chunk it did not
 * ask for, and the record is exact; a client that asked sees its usage chunk once.
 */
import http from 'node:http'
import express from 'express'
import Fastify from 'fastify'
import replyFrom from '@fastify/reply-from'
import { createProxyMiddleware, fixRequestBody } from 'http-proxy-middleware'
import OpenAI from 'openai'
import { usagewire as expressUsagewire, type UsageRecord } from '@usagewire/express'
import { usagewire as fastifyUsagewire } from '@usagewire/fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listen, shut, waitFor } from '../express/helpers.js'

const chunk = (data: object) =>
  `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-x', ...data })}\n\n`
const USAGE = {
  prompt_tokens: 1234,
  completion_tokens: 56,
  total_tokens: 1290,
  prompt_tokens_details: { cached_tokens: 1024 },
}

/** An OpenAI Chat upstream that, as OpenAI does, sends the usage chunk only when the request asks for it. */
async function startChatUpstream() {
  const bodies: Record<string, any>[] = []
  const server = http.createServer((req, res) => {
    let text = ''
    req.on('data', (d) => (text += d))
    req.on('end', () => {
      const body = JSON.parse(text)
      bodies.push(body)
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(chunk({ choices: [{ index: 0, delta: { role: 'assistant', content: 'Hel' } }] }))
      res.write(chunk({ choices: [{ index: 0, delta: { content: 'lo' } }] }))
      res.write(chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }))
      if (body.stream_options?.include_usage) res.write(chunk({ choices: [], usage: USAGE }))
      res.end('data: [DONE]\n\n')
    })
  })
  return { url: await listen(server), bodies, close: () => shut(server) }
}

type Upstream = Awaited<ReturnType<typeof startChatUpstream>>

async function expressGateway(target: string, records: UsageRecord[]) {
  const app = express()
  app.use(express.json())
  app.use(expressUsagewire({ ensureStreamUsage: true, onUsage: (r) => void records.push(r) }))
  app.use(createProxyMiddleware({ target, on: { proxyReq: fixRequestBody } }))
  const server = http.createServer(app)
  return { url: await listen(server), close: () => shut(server) }
}

async function fastifyGateway(target: string, records: UsageRecord[]) {
  const app = Fastify()
  await app.register(fastifyUsagewire, { ensureStreamUsage: true, onUsage: (r) => void records.push(r) })
  // @fastify/http-proxy forwards the raw body unparsed; reply.from() in a route forwards the parsed one.
  await app.register(replyFrom, { base: target })
  app.post('/v1/chat/completions', (_request, reply) => reply.from())
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { url, close: () => app.close() }
}

describe.each([
  ['express + http-proxy-middleware', expressGateway],
  ['fastify + @fastify/reply-from', fastifyGateway],
] as const)('ensureStreamUsage through %s', (_name, start) => {
  let upstream: Upstream
  let gateway: { url: string; close(): Promise<void> }
  const records: UsageRecord[] = []
  beforeAll(async () => {
    upstream = await startChatUpstream()
    gateway = await start(upstream.url, records)
  })
  afterAll(async () => {
    await gateway.close()
    await upstream.close()
  })

  const client = () => new OpenAI({ apiKey: 'x', baseURL: `${gateway.url}/v1`, maxRetries: 0 })

  it('a client that did not ask for usage sees no usage chunk, and the record is exact', async () => {
    const before = records.length
    const stream = await client().chat.completions.create({
      model: 'gpt-x',
      stream: true,
      messages: [{ role: 'user', content: 'hi' }],
    })
    const chunks = []
    for await (const c of stream) chunks.push(c)
    expect(upstream.bodies.at(-1)!.stream_options).toEqual({ include_usage: true })
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? null)).toEqual(['Hel', 'lo', null])
    expect(chunks.some((c) => c.usage)).toBe(false)
    const record = await waitFor(() => records[before], 'the usage record')
    expect(record.usage).toMatchObject({ input: 210, cacheRead: 1024, output: 56 })
    expect(record).toMatchObject({ status: 'complete', final: true })
  })

  it('a client that asked for usage sees its usage chunk once', async () => {
    const before = records.length
    const stream = await client().chat.completions.create({
      model: 'gpt-x',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'hi' }],
    })
    const usages = []
    for await (const c of stream) if (c.usage) usages.push(c.usage)
    expect(usages).toEqual([USAGE])
    const record = await waitFor(() => records[before], 'the usage record')
    expect(record.usage).toMatchObject({ input: 210, cacheRead: 1024, output: 56 })
  })
})
