/**
 * Claude Code as a real client: the `claude` binary installed at the repo root, run non-interactively
 * (`claude -p <prompt> --output-format json`) against a base URL the test chooses, with its OpenTelemetry
 * metrics exported as OTLP http/json to a collector started for the run. What it counts is what a team
 * running Claude Code through a gateway sees on its dashboards: the `claude_code.token.usage` data points,
 * summed per `type` (input, output, cacheRead, cacheCreation).
 *
 * Every run gets a fresh HOME (and a working directory inside it), removed afterwards, and an environment
 * built from scratch, so nothing of the machine's own configuration, credentials or repository leaks into
 * the run. Everything binds 127.0.0.1; the binary talks only to the base URL and the collector.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, mkdir, rm } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import zlib from 'node:zlib'
import { listen, shut } from '../matrix/upstream.js'

/** The `claude` launcher pnpm linked at the repo root. */
export const CLAUDE_BIN = fileURLToPath(new URL('../../node_modules/.bin/claude', import.meta.url))

export interface ClaudeCodeTokens {
  input: number
  output: number
  cacheRead: number
  cacheCreation: number
}

export interface ClaudeCodeRun {
  /** `claude_code.token.usage` summed per `type`, over every export the run made. */
  metrics: ClaudeCodeTokens
  /** The `--output-format json` result (its `usage` is the session's own count); undefined if stdout was not JSON. */
  json: unknown
  exitCode: number
  stdout: string
  stderr: string
  /** How many OTLP metric exports arrived. */
  exports: number
  durationMs: number
}

export interface RunClaudeCodeOptions {
  /** Where Claude Code sends its Messages requests (`ANTHROPIC_BASE_URL`). */
  baseUrl: string
  prompt?: string
  /** The run is killed (and the call rejects) after this long. */
  timeoutMs?: number
}

const TOKEN_USAGE = 'claude_code.token.usage'
const TYPES: Record<string, keyof ClaudeCodeTokens> = {
  input: 'input',
  output: 'output',
  cacheRead: 'cacheRead',
  cacheCreation: 'cacheCreation',
}
/** OTLP AggregationTemporality: a delta point counts since the previous export, a cumulative one since the start. */
const CUMULATIVE = 2

interface OtlpValue {
  stringValue?: string
  intValue?: string | number
  doubleValue?: number
  boolValue?: boolean
}
interface OtlpPoint {
  attributes?: { key: string; value: OtlpValue }[]
  timeUnixNano?: string | number
  asInt?: string | number
  asDouble?: number
}
interface OtlpMetric {
  name: string
  sum?: { aggregationTemporality?: number; dataPoints?: OtlpPoint[] }
}
interface OtlpExport {
  resourceMetrics?: { scopeMetrics?: { metrics?: OtlpMetric[] }[] }[]
}

/**
 * Sums the token-usage points of OTLP JSON exports per `type`. Delta points add up; of cumulative
 * points only the latest per series counts (a series being the point's attribute set).
 */
export function sumTokenUsage(exports: unknown[]): ClaudeCodeTokens {
  const totals: ClaudeCodeTokens = { input: 0, output: 0, cacheRead: 0, cacheCreation: 0 }
  const latest = new Map<string, { time: bigint; type: keyof ClaudeCodeTokens; value: number }>()
  for (const body of exports as OtlpExport[]) {
    for (const resource of body.resourceMetrics ?? []) {
      for (const scope of resource.scopeMetrics ?? []) {
        for (const metric of scope.metrics ?? []) {
          if (metric.name !== TOKEN_USAGE || !metric.sum) continue
          const cumulative = metric.sum.aggregationTemporality === CUMULATIVE
          for (const point of metric.sum.dataPoints ?? []) {
            const attributes = point.attributes ?? []
            const typeValue = attributes.find((a) => a.key === 'type')?.value.stringValue
            const type = typeValue === undefined ? undefined : TYPES[typeValue]
            if (type === undefined) continue
            const value = Number(point.asDouble ?? point.asInt ?? 0)
            if (!cumulative) {
              totals[type] += value
              continue
            }
            const series = JSON.stringify([...attributes].sort((a, b) => a.key.localeCompare(b.key)))
            const time = BigInt(point.timeUnixNano ?? 0)
            const seen = latest.get(series)
            if (!seen || time >= seen.time) latest.set(series, { time, type, value })
          }
        }
      }
    }
  }
  for (const { type, value } of latest.values()) totals[type] += value
  return totals
}

/** An OTLP/HTTP JSON metrics receiver: keeps every `/v1/metrics` body it is sent. */
async function startCollector(): Promise<{ url: string; exports: unknown[]; close(): Promise<void> }> {
  const exports: unknown[] = []
  const server = http.createServer(async (req, res) => {
    const parts: Buffer[] = []
    for await (const part of req) parts.push(part as Buffer)
    let body = Buffer.concat(parts)
    if (req.headers['content-encoding'] === 'gzip') body = zlib.gunzipSync(body)
    if (req.method === 'POST' && (req.url ?? '').split('?')[0] === '/v1/metrics') {
      try {
        exports.push(JSON.parse(body.toString('utf8')))
      } catch {
        res.writeHead(400).end()
        return
      }
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
  })
  return { url: await listen(server), exports, close: () => shut(server) }
}

/** The environment of a run: only what Claude Code needs, nothing inherited but PATH. */
function runEnv(home: string, baseUrl: string, collectorUrl: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    LANG: 'C.UTF-8',
    ANTHROPIC_BASE_URL: baseUrl,
    ANTHROPIC_API_KEY: 'sk-ant-fake',
    CLAUDE_CODE_ENABLE_TELEMETRY: '1',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl,
    DISABLE_AUTOUPDATER: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
  }
}

interface Exit {
  code: number
  stdout: string
  stderr: string
}

/**
 * Runs the binary with `args` and waits for it. It starts in its own process group (the launcher is a
 * shell script around the native binary), so a timeout ends both.
 */
function spawnClaude(args: string[], env: NodeJS.ProcessEnv, cwd: string, timeoutMs: number): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(CLAUDE_BIN, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        child.kill('SIGKILL')
      }
      reject(new Error(`claude did not exit within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`))
    }, timeoutMs)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr })
    })
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** True once some export holds a token-usage metric. */
const hasTokenUsage = (exports: unknown[]) =>
  (exports as OtlpExport[]).some((body) =>
    body.resourceMetrics?.some((r) => r.scopeMetrics?.some((s) => s.metrics?.some((m) => m.name === TOKEN_USAGE))),
  )

/**
 * Runs `claude -p <prompt> --output-format json` against `baseUrl` and returns what it reported.
 * The metrics are flushed on exit (the exporter waits for the collector's answer before the process
 * ends); if none arrived by then, it waits up to 2 s more for a late one.
 */
export async function runClaudeCode({
  baseUrl,
  prompt = 'hi',
  timeoutMs = 90_000,
}: RunClaudeCodeOptions): Promise<ClaudeCodeRun> {
  const collector = await startCollector()
  const home = await mkdtemp(path.join(tmpdir(), 'usagewire-claude-code-'))
  try {
    // Its working directory is a fresh one: Claude Code reads the project it runs in.
    const cwd = path.join(home, 'work')
    await mkdir(cwd)
    const started = performance.now()
    const exit = await spawnClaude(
      ['-p', prompt, '--output-format', 'json'],
      runEnv(home, baseUrl, collector.url),
      cwd,
      timeoutMs,
    )
    const durationMs = Math.round(performance.now() - started)
    for (const deadline = Date.now() + 2_000; !hasTokenUsage(collector.exports) && Date.now() < deadline;)
      await sleep(20)
    let json: unknown
    try {
      json = JSON.parse(exit.stdout)
    } catch {
      json = undefined
    }
    return {
      metrics: sumTokenUsage(collector.exports),
      json,
      exitCode: exit.code,
      stdout: exit.stdout,
      stderr: exit.stderr,
      exports: collector.exports.length,
      durationMs,
    }
  } finally {
    await collector.close()
    await rm(home, { recursive: true, force: true })
  }
}

/** The `usage` of a run's JSON result, in the metric's terms. */
export function jsonUsage(run: ClaudeCodeRun) {
  const usage = (run.json as { usage?: Record<string, number> } | undefined)?.usage ?? {}
  return {
    input: usage.input_tokens,
    cacheRead: usage.cache_read_input_tokens,
    cacheCreation: usage.cache_creation_input_tokens,
    output: usage.output_tokens,
  }
}

/**
 * Whether the binary runs here (`claude --version`), with the reason when it does not: a missing install,
 * a platform package pnpm did not fetch, a binary that does not start.
 */
export async function probeClaudeCode(
  timeoutMs = 30_000,
): Promise<{ ok: true; version: string } | { ok: false; reason: string }> {
  if (!existsSync(CLAUDE_BIN))
    return { ok: false, reason: `${CLAUDE_BIN} does not exist (is @anthropic-ai/claude-code installed?)` }
  const home = await mkdtemp(path.join(tmpdir(), 'usagewire-claude-code-'))
  try {
    const exit = await spawnClaude(['--version'], { PATH: process.env.PATH, HOME: home }, home, timeoutMs)
    const version = /\d+\.\d+\.\d+/.exec(exit.stdout)?.[0]
    if (exit.code === 0 && version) return { ok: true, version }
    return {
      ok: false,
      reason: `claude --version exited ${exit.code}: ${(exit.stderr || exit.stdout).trim().slice(0, 500)}`,
    }
  } catch (error) {
    return { ok: false, reason: `claude --version failed: ${(error as Error).message}` }
  } finally {
    await rm(home, { recursive: true, force: true })
  }
}
