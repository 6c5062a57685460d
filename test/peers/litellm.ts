/**
 * The LiteLLM proxy (`PEERS.litellm`, `PEERS.litellmNewest`, installed by test/peers/python.ts) as a child
 * process, with a config written to a temp dir and a fresh master key. It binds 127.0.0.1 on a port the OS
 * just handed out (LiteLLM takes the port as a flag; if another process takes it first, the next attempt
 * picks another) and is ready when `GET /health/liveliness` answers, 7–11 s after the start. `DATABASE_URL`
 * is never set: with it, even empty, LiteLLM loads prisma and fails.
 *
 * The process never outlives the test: `stop()` ends it (SIGTERM, then SIGKILL), the test process's `exit`
 * kills it, and a watcher thread started in LiteLLM's own interpreter ends it once its parent is gone (a test
 * worker killed outright runs no handler of its own).
 *
 * Forwarding client headers to the provider: `general_settings.forward_client_headers_to_llm_api: true`
 * (every model), or `litellm_settings.model_group_settings.forward_client_headers_to_llm_api: [names]`
 * (those model groups). LiteLLM 1.83.10 then passes on every request header whose name starts with `x-`
 * (except `x-stainless-*`), and `anthropic-beta`, after dropping the headers it authenticates with
 * (`authorization`, `x-api-key`, `x-litellm-api-key`, `x-goog-api-key`, `api-key`, `x-mcp-*`, …). So the
 * sidecar's `x-usagewire-correlation` reaches an `anthropic/` deployment, on `/v1/messages` and
 * `/v1/chat/completions` alike. In 1.83.10 it does not reach an OpenAI Responses upstream behind the
 * `/v1/messages` bridge: that path (`litellm.responses`) sends only a deployment's `extra_headers`, whatever
 * the setting; 1.108.7 passes it on there too (test/peers/litellm-bridge.test.ts). Without the setting no
 * client header is passed on.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createParser } from 'eventsource-parser'
import type { Peer } from './python.js'

export interface LiteLLM {
  /** `http://127.0.0.1:<port>`: `/v1/messages`, `/v1/chat/completions`, `/metrics/`. */
  url: string
  /** The master key, the only key this proxy accepts (`Authorization: Bearer` or `x-api-key`). */
  masterKey: string
  /** From spawning the process to its first healthy answer. */
  startMs: number
  /** The end of what the process wrote to stdout and stderr, for failure messages. */
  output(): string
  stop(): Promise<void>
}

export interface LiteLLMConfig {
  model_list: Array<{ model_name: string; litellm_params: Record<string, unknown> }>
  litellm_settings?: Record<string, unknown>
  general_settings?: Record<string, unknown>
  [section: string]: unknown
}

/**
 * Runs LiteLLM's CLI in its venv's interpreter behind a thread that exits once the parent process is gone
 * (LiteLLM with one worker serves from this one process).
 */
const GUARDED_CLI = [
  'import os, sys, threading, time',
  'parent = os.getppid()',
  'def watch():',
  '    while True:',
  '        time.sleep(0.5)',
  '        if os.getppid() != parent:',
  '            os._exit(0)',
  'threading.Thread(target=watch, daemon=True).start()',
  'from litellm import run_server',
  "sys.argv[0] = 'litellm'",
  'sys.exit(run_server())',
].join('\n')

async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

const exited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null

async function end(child: ChildProcess): Promise<void> {
  if (exited(child)) return
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await gone
  clearTimeout(timer)
}

export interface StartOptions {
  timeoutMs?: number
  attempts?: number
  env?: Record<string, string>
}

/**
 * Starts LiteLLM with `config` and resolves once it is healthy; rejects with the reason and its output.
 * The config is written as JSON, which YAML (LiteLLM's `yaml.safe_load`) reads as it is.
 */
export async function startLiteLLM(
  peer: Peer,
  config: LiteLLMConfig,
  { timeoutMs = 60_000, attempts = 3, env = {} }: StartOptions = {},
): Promise<LiteLLM> {
  const dir = mkdtempSync(path.join(tmpdir(), 'usagewire-litellm-'))
  const file = path.join(dir, 'config.yaml')
  writeFileSync(file, JSON.stringify(config, null, 2))
  let lastError: Error | undefined
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      const litellm = await launch(peer, file, await freePort(), timeoutMs, env)
      const stop = litellm.stop
      return { ...litellm, stop: () => stop().finally(() => rmSync(dir, { recursive: true, force: true })) }
    } catch (error) {
      lastError = error as Error
      if (!/address already in use|EADDRINUSE|Errno 98/i.test(lastError.message)) break
    }
  }
  rmSync(dir, { recursive: true, force: true })
  throw lastError!
}

async function launch(
  peer: Peer,
  config: string,
  port: number,
  timeoutMs: number,
  extraEnv: Record<string, string>,
): Promise<LiteLLM> {
  const masterKey = `sk-${randomBytes(32).toString('hex')}`
  const { DATABASE_URL: _database, ...inherited } = process.env
  const args = ['--config', config, '--host', '127.0.0.1', '--port', String(port), '--num_workers', '1']
  const started = Date.now()
  const child = spawn(peer.bin('python'), ['-c', GUARDED_CLI, ...args, '--telemetry', 'False'], {
    cwd: path.dirname(config),
    env: {
      ...inherited,
      LITELLM_MASTER_KEY: masterKey,
      LITELLM_LOCAL_MODEL_COST_MAP: 'True',
      LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS: 'True',
      LITELLM_MODE: 'PRODUCTION',
      // Loopback calls never go through an HTTP proxy the environment may name.
      NO_PROXY: '127.0.0.1,localhost',
      no_proxy: '127.0.0.1,localhost',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let log = ''
  const keep = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-20_000))
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  let spawnError: Error | undefined
  child.once('error', (error) => (spawnError = error))
  const onExit = () => child.kill('SIGKILL')
  process.once('exit', onExit)
  const stop = async () => {
    process.off('exit', onExit)
    await end(child)
  }

  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (spawnError) {
      await stop()
      throw new Error(`LiteLLM could not be spawned: ${spawnError.message}`)
    }
    if (exited(child)) {
      process.off('exit', onExit)
      throw new Error(`LiteLLM exited (code ${child.exitCode}, signal ${child.signalCode}) before answering:\n${log}`)
    }
    try {
      const res = await fetch(`${url}/health/liveliness`, { signal: AbortSignal.timeout(1_000) })
      if (res.ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`LiteLLM did not answer GET ${url}/health/liveliness within ${timeoutMs} ms:\n${log}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return { url, masterKey, startMs: Date.now() - started, output: () => log, stop }
}

export interface Relay {
  /** `http://127.0.0.1:<port>`, listening from the start. */
  url: string
  /** Where connections go from now on: LiteLLM's URL, once it is known. */
  pointAt(url: string): void
  close(): Promise<void>
}

/**
 * A TCP relay in front of LiteLLM, for what must know LiteLLM's URL before LiteLLM starts: a sidecar whose
 * target is LiteLLM, while LiteLLM's config names the sidecar's provider-facing URL. A port reserved for
 * LiteLLM could be taken by another process during its 7–11 s start; the relay's is bound at once.
 */
export async function startRelay(): Promise<Relay> {
  let target: { host: string; port: number } | undefined
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    if (!target) return void socket.destroy()
    const upstream = net.connect(target.port, target.host)
    sockets.add(upstream)
    upstream.once('close', () => sockets.delete(upstream))
    socket.on('error', () => upstream.destroy())
    upstream.on('error', () => socket.destroy())
    socket.pipe(upstream).pipe(socket)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as net.AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    pointAt(url) {
      const { hostname, port } = new URL(url)
      target = { host: hostname, port: Number(port) }
    },
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

// ---------------------------------------------------------------------------------------------------------
// What a client reads

export interface SseEvent {
  event: string
  data: any
}

export interface SseAnswer {
  status: number
  contentType: string | null
  events: SseEvent[]
}

/**
 * POSTs `body` as JSON and reads the SSE answer with eventsource-parser, every event as it came: what a
 * client gets where the SDK's stream helper throws before it can show it.
 */
export async function postSse(url: string, headers: Record<string, string>, body: unknown): Promise<SseAnswer> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  const events: SseEvent[] = []
  const parser = createParser({
    onEvent: (event) => {
      // A data line that is not JSON fails the test here ([DONE] aside): the answer must stay valid SSE.
      if (event.data !== '[DONE]') events.push({ event: event.event ?? '', data: JSON.parse(event.data) })
    },
  })
  const decoder = new TextDecoder()
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    parser.feed(decoder.decode(chunk, { stream: true }))
  }
  return { status: response.status, contentType: response.headers.get('content-type'), events }
}

/** The text of an Anthropic stream's `content_block_delta` events. */
export const textOf = (events: SseEvent[]): string =>
  events
    .filter((e) => e.event === 'content_block_delta')
    .map((e) => e.data.delta?.text ?? '')
    .join('')

/** The headers an Anthropic client sends LiteLLM (its master key as `x-api-key`). */
export const anthropicHeaders = (key: string): Record<string, string> => ({
  'x-api-key': key,
  'anthropic-version': '2023-06-01',
})
