/**
 * Headroom (`headroom proxy --backend bedrock`) as a real peer: an Anthropic-speaking proxy that sends
 * every request to Bedrock through LiteLLM. Started from its venv (test/peers/python.ts) with a fresh
 * HOME and an environment built from scratch, so nothing of the machine's configuration or credentials
 * reaches it; fake AWS keys, the Bedrock runtime and control plane at URLs the test chooses, every
 * update check and telemetry off. Binds 127.0.0.1. The child is killed on close and when the test
 * process exits; its output is kept for error messages (test/peers/child.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { listen, shut } from '../matrix/upstream.js'
import { freePort, onFreePort, startChild } from './child.js'
import type { Peer } from './python.js'

export interface HeadroomOptions {
  /** Where LiteLLM sends the runtime calls (`AWS_BEDROCK_RUNTIME_ENDPOINT`). */
  runtimeUrl: string
  /** Where the startup `ListInferenceProfiles` goes (`AWS_ENDPOINT_URL_BEDROCK`); the runtime URL when unset. */
  controlPlaneUrl?: string
  /**
   * The port to listen on; a free one when unset. Set it when something must know Headroom's URL before
   * Headroom starts (a sidecar in front of it that is also its Bedrock endpoint).
   */
  port?: number
  /** How long to wait for `/livez`. */
  readyTimeoutMs?: number
}

export interface Headroom {
  url: string
  /** Milliseconds from spawn to the first successful `/livez`. */
  startMs: number
  /** The end of what the process wrote to stdout and stderr. */
  output(): string
  close(): Promise<void>
}

/**
 * Everything Headroom would fetch from the internet goes to `deadProxy` (a loopback port nothing listens on)
 * and fails at once; loopback calls bypass it. Its tokenizer vocabulary in particular (0.39 and 0.42 count
 * Claude prompts with tiktoken's `o200k_base`, downloaded on first use into `TIKTOKEN_CACHE_DIR`) is never
 * there, so Headroom falls back to its character estimator, and its `message_start` estimates are the same
 * on every machine.
 */
function environment(home: string, deadProxy: string, options: HeadroomOptions): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    LANG: 'C.UTF-8',
    NO_PROXY: '127.0.0.1,localhost',
    no_proxy: '127.0.0.1,localhost',
    HTTP_PROXY: deadProxy,
    HTTPS_PROXY: deadProxy,
    http_proxy: deadProxy,
    https_proxy: deadProxy,
    TIKTOKEN_CACHE_DIR: path.join(home, 'tiktoken'),
    AWS_ACCESS_KEY_ID: 'AKIAMOCKMOCKMOCKMOCK',
    AWS_SECRET_ACCESS_KEY: 'x',
    AWS_REGION: 'us-east-1',
    AWS_BEDROCK_RUNTIME_ENDPOINT: options.runtimeUrl,
    AWS_ENDPOINT_URL_BEDROCK: options.controlPlaneUrl ?? options.runtimeUrl,
    AWS_EC2_METADATA_DISABLED: 'true',
    LITELLM_LOCAL_MODEL_COST_MAP: 'True',
    HEADROOM_UPDATE_CHECK: 'off',
    HEADROOM_TELEMETRY: 'off',
    HEADROOM_OFFLINE: '1',
    HF_HUB_OFFLINE: '1',
  }
}

async function startOnce(peer: Peer, options: HeadroomOptions, port: number): Promise<Headroom> {
  const url = `http://127.0.0.1:${port}`
  const home = mkdtempSync(path.join(tmpdir(), 'usagewire-headroom-'))
  const removeHome = () => rmSync(home, { recursive: true, force: true })
  const deadProxy = `http://127.0.0.1:${await freePort()}`
  const args = [
    'proxy',
    '--backend',
    'bedrock',
    '--region',
    'us-east-1',
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--no-telemetry',
    '--disable-kompress',
    '--no-subscription-tracking',
  ]
  try {
    const { startMs, output, stop } = await startChild({
      name: 'headroom proxy',
      command: peer.bin('headroom'),
      args,
      cwd: home,
      env: environment(home, deadProxy, options),
      group: true,
      readyUrl: `${url}/livez`,
      timeoutMs: options.readyTimeoutMs ?? 60_000,
    })
    return { url, startMs, output, close: () => stop().finally(removeHome) }
  } catch (error) {
    removeHome()
    throw error
  }
}

/**
 * Starts Headroom and waits for `/livez`; when it chose the port itself, one retry if another process
 * took that port meanwhile.
 */
export async function startHeadroom(peer: Peer, options: HeadroomOptions): Promise<Headroom> {
  if (options.port !== undefined) return startOnce(peer, options, options.port)
  return onFreePort((port) => startOnce(peer, options, port), 2)
}

export interface Recorder {
  url: string
  /** Each response body that went through, whole, once it ended. */
  bodies: string[]
  close(): Promise<void>
}

/**
 * A plain HTTP pass-through to `target` that keeps every response body: what a client that shows only its
 * totals (Claude Code) was sent. Bytes and headers pass unchanged; binds 127.0.0.1.
 */
export async function startRecorder(target: string): Promise<Recorder> {
  const { hostname, port } = new URL(target)
  const bodies: string[] = []
  const server = http.createServer((req, res) => {
    const upstream = http.request(
      { host: hostname, port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers)
        const parts: Buffer[] = []
        up.on('data', (chunk: Buffer) => {
          parts.push(chunk)
          res.write(chunk)
        })
        up.on('end', () => {
          bodies.push(Buffer.concat(parts).toString('utf8'))
          res.end()
        })
      },
    )
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  return { url: await listen(server), bodies, close: () => shut(server) }
}
