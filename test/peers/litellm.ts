/**
 * The LiteLLM proxy (`PEERS.litellm`, `PEERS.litellmNewest`, installed by test/peers/python.ts) as a child
 * process, with a config written to a temp dir and a fresh master key. It binds 127.0.0.1 on a port the OS
 * just handed out (LiteLLM takes the port as a flag; if another process takes it first, the next attempt
 * picks another) and is ready when `GET /health/liveliness` answers, 7–11 s after the start. `DATABASE_URL`
 * is never set: with it, even empty, LiteLLM loads prisma and fails.
 *
 * The process never outlives the test: `stop()` ends it, the test process's `exit` kills it
 * (test/peers/child.ts), and a watcher thread started in LiteLLM's own interpreter ends it once its parent is
 * gone (a test worker killed outright runs no handler of its own).
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
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { onFreePort, startChild, type Child } from './child.js'
import type { Peer } from './python.js'

export interface LiteLLM extends Child {
  /** `http://127.0.0.1:<port>`: `/v1/messages`, `/v1/chat/completions`, `/metrics/`. */
  url: string
  /** The master key, the only key this proxy accepts (`Authorization: Bearer` or `x-api-key`). */
  masterKey: string
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
  const removeDir = () => rmSync(dir, { recursive: true, force: true })
  try {
    const litellm = await onFreePort((port) => launch(peer, file, port, timeoutMs, env), attempts)
    return { ...litellm, stop: () => litellm.stop().finally(removeDir) }
  } catch (error) {
    removeDir()
    throw error
  }
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
  const url = `http://127.0.0.1:${port}`
  const child = await startChild({
    name: 'LiteLLM',
    command: peer.bin('python'),
    args: ['-c', GUARDED_CLI, ...args, '--telemetry', 'False'],
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
    readyUrl: `${url}/health/liveliness`,
    timeoutMs,
  })
  return { url, masterKey, ...child }
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
