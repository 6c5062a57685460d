/**
 * A gateway that signs its Bedrock calls for the address it was given (the sidecar's provider side, as
 * LiteLLM does) gets them rejected by AWS, which checks the signature against its own host. With
 * `resignSigV4`, the sidecar signs them again for the provider's host with the default credential
 * chain. The provider here checks signatures as AWS does.
 */
import http from 'node:http'
import { Sha256 } from '@aws-crypto/sha256-js'
import { SignatureV4 } from '@smithy/signature-v4'
import { startProxy } from '@usagewire/proxy'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { listen, shut } from '../express/helpers.js'

const GATEWAY_KEYS = { accessKeyId: 'AKIDGATEWAY', secretAccessKey: 'gateway-secret' }
const SIDECAR_KEYS = { accessKeyId: 'AKIDSIDECAR', secretAccessKey: 'sidecar-secret' }
const KEYS: Record<string, string> = {
  [GATEWAY_KEYS.accessKeyId]: GATEWAY_KEYS.secretAccessKey,
  [SIDECAR_KEYS.accessKeyId]: SIDECAR_KEYS.secretAccessKey,
}

const signer = (credentials: typeof GATEWAY_KEYS) =>
  new SignatureV4({ credentials, region: 'us-east-1', service: 'bedrock', sha256: Sha256 })

/** Checks a request's SigV4 signature against this server's own host, as AWS does. */
async function verify(req: http.IncomingMessage, body: Buffer): Promise<string | undefined> {
  const auth = String(req.headers.authorization ?? '')
  const match =
    /Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]+)/.exec(
      auth,
    )
  if (!match) return 'no signature'
  const [, key, , region, service, signed, signature] = match
  const secret = KEYS[key!]
  if (!secret) return `unknown key ${key}`
  const headers: Record<string, string> = {}
  for (const name of signed!.split(';')) headers[name] = String(req.headers[name] ?? '')
  const date = String(req.headers['x-amz-date'])
  const signingDate = new Date(
    `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T${date.slice(9, 11)}:${date.slice(11, 13)}:${date.slice(13, 15)}Z`,
  )
  const url = new URL(req.url ?? '/', `http://${req.headers.host}`)
  const again = await new SignatureV4({
    credentials: { accessKeyId: key!, secretAccessKey: secret },
    region: region!,
    service: service!,
    sha256: Sha256,
  }).sign(
    {
      method: req.method!,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      headers,
      body,
    },
    { signingDate },
  )
  const expected = /Signature=([0-9a-f]+)/.exec(String(again.headers.authorization))?.[1]
  return expected === signature ? undefined : 'signature does not match'
}

let provider: { url: string; close(): Promise<void> }
const seen: Array<{ rejected?: string; key?: string; body?: string; headers?: http.IncomingHttpHeaders }> = []
beforeAll(async () => {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      const body = Buffer.concat(chunks)
      const rejected = await verify(req, body)
      const key = /Credential=([^/]+)/.exec(String(req.headers.authorization))?.[1]
      seen.push({ rejected, key, body: body.toString('utf8'), headers: req.headers })
      if (rejected) {
        res.writeHead(403, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ message: rejected }))
      }
      // An OpenAI Chat stream (Bedrock's OpenAI-compatible endpoint): its usage only when asked for.
      if (req.url?.endsWith('/chat/completions')) {
        const asked = JSON.parse(body.toString('utf8')).stream_options?.include_usage === true
        const chunk = (choices: object[], usage?: object) =>
          `data: ${JSON.stringify({ object: 'chat.completion.chunk', choices, ...(usage && { usage }) })}\n\n`
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write(chunk([{ index: 0, delta: { content: 'hi' }, finish_reason: 'stop' }]))
        if (asked) res.write(chunk([], { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 }))
        return res.end('data: [DONE]\n\n')
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({
          output: { message: { role: 'assistant', content: [{ text: 'hi' }] } },
          stopReason: 'end_turn',
          usage: { inputTokens: 12, outputTokens: 3, totalTokens: 15 },
        }),
      )
    })
  })
  provider = { url: await listen(server), close: () => shut(server) }
})
afterAll(() => provider.close())

const saved = { ...process.env }
afterEach(() => {
  process.env = { ...saved }
  seen.length = 0
})

const CONVERSE = {
  path: '/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/converse',
  body: JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'hi' }] }] }),
}
const CHAT_STREAM = {
  path: '/openai/v1/chat/completions',
  body: JSON.stringify({ model: 'openai.gpt-oss-20b-1:0', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
}

/** What a gateway does: signs for the endpoint it was given (the sidecar), then sends there. */
async function gatewayCall(providerUrl: string, { path, body } = CONVERSE): Promise<number> {
  const url = new URL(path, providerUrl)
  const signed = await signer(GATEWAY_KEYS).sign({
    method: 'POST',
    protocol: 'http:',
    hostname: url.hostname,
    port: Number(url.port),
    path: url.pathname,
    headers: { host: url.host, 'content-type': 'application/json' },
    body,
  })
  const response = await fetch(url, { method: 'POST', headers: signed.headers as Record<string, string>, body })
  await response.arrayBuffer()
  return response.status
}

/** The default credential chain finds the sidecar's own keys in the environment. */
function useSidecarKeys(): void {
  process.env.AWS_ACCESS_KEY_ID = SIDECAR_KEYS.accessKeyId
  process.env.AWS_SECRET_ACCESS_KEY = SIDECAR_KEYS.secretAccessKey
  delete process.env.AWS_SESSION_TOKEN
  delete process.env.AWS_PROFILE
}

describe('resignSigV4', () => {
  it('without it, the provider rejects what the gateway signed for the sidecar', async () => {
    const sidecar = await startProxy({
      listen: '127.0.0.1:0',
      target: 'http://127.0.0.1:9',
      providerListen: '127.0.0.1:0',
      provider: provider.url,
    })
    try {
      expect(await gatewayCall(sidecar.providerUrl!)).toBe(403)
      expect(seen[0]).toMatchObject({ rejected: 'signature does not match', key: GATEWAY_KEYS.accessKeyId })
    } finally {
      await sidecar.close()
    }
  })

  it('with it, the request is signed again for the provider, with the default credential chain', async () => {
    useSidecarKeys()
    const sidecar = await startProxy({
      listen: '127.0.0.1:0',
      target: 'http://127.0.0.1:9',
      providerListen: '127.0.0.1:0',
      provider: provider.url,
      resignSigV4: true,
    })
    try {
      expect(await gatewayCall(sidecar.providerUrl!)).toBe(200)
      expect(seen[0]).toMatchObject({ rejected: undefined, key: SIDECAR_KEYS.accessKeyId })
    } finally {
      await sidecar.close()
    }
  })
})

describe('resignSigV4 and the correlation header', () => {
  it('a gateway that passes client headers on sends the correlation header too: it is not signed, nor sent on', async () => {
    useSidecarKeys()
    const sidecar = await startProxy({
      listen: '127.0.0.1:0',
      target: 'http://127.0.0.1:9',
      providerListen: '127.0.0.1:0',
      provider: provider.url,
      resignSigV4: true,
    })
    try {
      // What LiteLLM's forward_client_headers_to_llm_api does with the header the client side added.
      const url = new URL(CONVERSE.path, sidecar.providerUrl!)
      const headers = { host: url.host, 'content-type': 'application/json', 'x-usagewire-correlation': 'c-1' }
      const signed = await signer(GATEWAY_KEYS).sign({
        method: 'POST',
        protocol: 'http:',
        hostname: url.hostname,
        port: Number(url.port),
        path: url.pathname,
        headers,
        body: CONVERSE.body,
      })
      const response = await fetch(url, {
        method: 'POST',
        headers: signed.headers as Record<string, string>,
        body: CONVERSE.body,
      })
      await response.arrayBuffer()
      expect(response.status).toBe(200)
      expect(seen[0]).toMatchObject({ rejected: undefined, key: SIDECAR_KEYS.accessKeyId })
      expect(seen[0]!.headers).not.toHaveProperty('x-usagewire-correlation')
    } finally {
      await sidecar.close()
    }
  })
})

describe('resignSigV4 and ensureStreamUsage', () => {
  it('a signed Chat stream is signed again with stream_options.include_usage in its body', async () => {
    useSidecarKeys()
    const sidecar = await startProxy({
      listen: '127.0.0.1:0',
      target: 'http://127.0.0.1:9',
      providerListen: '127.0.0.1:0',
      provider: provider.url,
      resignSigV4: true,
    })
    try {
      expect(await gatewayCall(sidecar.providerUrl!, CHAT_STREAM)).toBe(200)
      expect(seen[0]).toMatchObject({ rejected: undefined, key: SIDECAR_KEYS.accessKeyId })
      expect(seen[0]!.body).toBe(CHAT_STREAM.body.replace(/^\{/, '{"stream_options":{"include_usage":true},'))
    } finally {
      await sidecar.close()
    }
  })

  it('without re-signing, a signed Chat body is left as it came: changing it would break its signature', async () => {
    const sidecar = await startProxy({
      listen: '127.0.0.1:0',
      target: 'http://127.0.0.1:9',
      providerListen: '127.0.0.1:0',
      provider: provider.url,
    })
    try {
      // Rejected for the host it was signed for, as any request the gateway signed for the sidecar.
      expect(await gatewayCall(sidecar.providerUrl!, CHAT_STREAM)).toBe(403)
      expect(seen[0]).toMatchObject({ rejected: 'signature does not match', body: CHAT_STREAM.body })
    } finally {
      await sidecar.close()
    }
  })
})
