/**
 * One streaming request through the gateway with each official SDK, returning the usage object
 * exactly as the SDK hands it to the application.
 */
import Anthropic from '@anthropic-ai/sdk'
import { BedrockRuntimeClient, InvokeModelWithResponseStreamCommand } from '@aws-sdk/client-bedrock-runtime'
import { GoogleGenAI } from '@google/genai'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import OpenAI from 'openai'
// @anthropic-ai/sdk 0.50.1 (aliased): on message_delta it overwrites the cache counters
// unconditionally, so a delta without them erases them (docs/dialects/anthropic-messages.md#how-sdks-accumulate).
import Anthropic050 from 'sdk050'

export type ClientKind = 'anthropic' | 'anthropic-0.50.1' | 'openai-chat' | 'openai-responses' | 'bedrock' | 'gemini'

export interface ClientRequest {
  kind: ClientKind
  /** Gateway base URL without /v1 (the Bedrock endpoint; Gemini's base URL). */
  baseURL: string
  /** The mock scenario, sent as the model name (Bedrock's model id, Gemini's model). */
  model: string
  headers: Record<string, string>
}

const PROMPT = 'Say something about token usage.'

/** Both SDK versions stream the same way; they differ in how they accumulate `message_delta` usage. */
async function anthropicUsage(client: Anthropic | Anthropic050, req: ClientRequest): Promise<unknown> {
  const message = await (client as Anthropic).messages
    .stream(
      { model: req.model, max_tokens: 256, messages: [{ role: 'user', content: PROMPT }] },
      { headers: req.headers },
    )
    .finalMessage()
  return message.usage
}

/**
 * A Bedrock runtime client for a gateway: dummy credentials (SigV4 signs the request; the mock does not
 * check it), no retries, and `headers` added to every request.
 */
export function bedrockClient(endpoint: string, headers: Record<string, string> = {}): BedrockRuntimeClient {
  // The AWS SDK warns on Node 20 that its releases from 2027 on need Node 22; the locked version runs
  // here, and the warning would only clutter the demo's table.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  const client = new BedrockRuntimeClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    requestHandler: new NodeHttpHandler(),
    maxAttempts: 1,
  })
  client.middlewareStack.add(
    (next) => (args) => {
      const request = args.request as { headers?: Record<string, string> }
      if (request.headers) Object.assign(request.headers, headers)
      return next(args)
    },
    { step: 'build', name: 'extraHeaders' },
  )
  return client
}

/** An Anthropic Messages request as Bedrock takes it: no model (it is in the path), `anthropic_version`. */
export function bedrockRequest(modelId: string) {
  return {
    modelId,
    contentType: 'application/json',
    accept: 'application/json',
    body: JSON.stringify({
      anthropic_version: 'bedrock-2023-05-31',
      max_tokens: 256,
      messages: [{ role: 'user', content: PROMPT }],
    }),
  }
}

export function genaiClient(baseUrl: string, headers: Record<string, string> = {}): GoogleGenAI {
  return new GoogleGenAI({ apiKey: 'x', httpOptions: { baseUrl, headers } })
}

/**
 * What an application does with a Bedrock stream of Anthropic events, as the Anthropic Bedrock SDK does:
 * decode each chunk, take the usage of `message_start`, then let each `message_delta` overwrite the
 * fields it carries (docs/dialects/anthropic-messages.md#how-sdks-accumulate).
 */
async function bedrockUsage(req: ClientRequest): Promise<unknown> {
  const response = await bedrockClient(req.baseURL, req.headers).send(
    new InvokeModelWithResponseStreamCommand(bedrockRequest(req.model)),
  )
  let usage: Record<string, unknown> = {}
  for await (const part of response.body ?? []) {
    if (!part.chunk?.bytes) continue
    const event = JSON.parse(Buffer.from(part.chunk.bytes).toString('utf8')) as Record<string, any>
    if (event.type === 'message_start') usage = { ...event.message?.usage }
    if (event.type === 'message_delta') {
      for (const [key, value] of Object.entries(event.usage ?? {})) if (value != null) usage[key] = value
    }
  }
  return usage
}

export async function send(req: ClientRequest): Promise<unknown> {
  switch (req.kind) {
    case 'anthropic':
      return anthropicUsage(new Anthropic({ apiKey: 'x', baseURL: req.baseURL, maxRetries: 0 }), req)
    case 'anthropic-0.50.1':
      return anthropicUsage(new Anthropic050({ apiKey: 'x', baseURL: req.baseURL, maxRetries: 0 }), req)
    case 'openai-chat': {
      const client = new OpenAI({ apiKey: 'x', baseURL: `${req.baseURL}/v1`, maxRetries: 0 })
      const stream = await client.chat.completions.create(
        {
          model: req.model,
          messages: [{ role: 'user', content: PROMPT }],
          stream: true,
          stream_options: { include_usage: true },
        },
        { headers: req.headers },
      )
      // Like most applications: keep the last usage seen on any chunk.
      let usage: unknown = null
      for await (const chunk of stream) if (chunk.usage) usage = chunk.usage
      return usage
    }
    case 'openai-responses': {
      const client = new OpenAI({ apiKey: 'x', baseURL: `${req.baseURL}/v1`, maxRetries: 0 })
      const stream = await client.responses.create(
        { model: req.model, input: PROMPT, stream: true },
        { headers: req.headers },
      )
      let usage: unknown = null
      for await (const event of stream) if (event.type === 'response.completed') usage = event.response.usage
      return usage
    }
    case 'bedrock':
      return bedrockUsage(req)
    case 'gemini': {
      const stream = await genaiClient(req.baseURL, req.headers).models.generateContentStream({
        model: req.model,
        contents: PROMPT,
      })
      // Each chunk's usageMetadata is a running total: the last one is the response's.
      let usage: unknown = null
      for await (const chunk of stream) if (chunk.usageMetadata) usage = chunk.usageMetadata
      return usage
    }
  }
}
