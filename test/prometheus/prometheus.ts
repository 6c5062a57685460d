/**
 * A real Prometheus for tests: the system's binary (`apt-get install prometheus`; .ci/run installs it) on
 * 127.0.0.1, scraping the jobs a test names every second, and its HTTP API's instant queries.
 */
import { spawn } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { waitFor } from '../matrix/upstream.js'

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue
    const file = path.join(dir, name)
    try {
      accessSync(file, constants.X_OK)
      return file
    } catch {
      // not here
    }
  }
  return undefined
}

/** The `prometheus` binary on PATH, if any. */
export const PROMETHEUS_BIN = onPath('prometheus')

export interface ScrapeJob {
  name: string
  /** The metrics path, e.g. `/metrics`. */
  path: string
  /** `host:port`. */
  target: string
  /** Sent as `Authorization: Bearer`. */
  bearer?: string
}

export interface Prometheus {
  url: string
  /** What it wrote to stdout and stderr, for failure messages. */
  output(): string
  /** Ends it (SIGTERM) and removes its data. */
  stop(): Promise<void>
}

/**
 * Starts `executable` on 127.0.0.1 on an OS-chosen port (read from its log) with its config and data in a
 * temp dir, scraping `jobs` every second. The test process's `exit` kills it if it still runs.
 */
export async function startPrometheus(executable: string, jobs: ScrapeJob[]): Promise<Prometheus> {
  const dir = mkdtempSync(path.join(tmpdir(), 'usagewire-prometheus-'))
  const config = path.join(dir, 'prometheus.yml')
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      ...jobs.flatMap((job) => [
        `  - job_name: ${job.name}`,
        `    metrics_path: ${job.path}`,
        ...(job.bearer ? ['    authorization:', `      credentials: ${job.bearer}`] : []),
        '    static_configs:',
        `      - targets: ['${job.target}']`,
      ]),
      '',
    ].join('\n'),
  )
  const child = spawn(
    executable,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      '--web.listen-address=127.0.0.1:0',
      '--log.level=info',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let log = ''
  child.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()))
  let exited = false
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.once('exit', () => (exited = true))
  const onExit = () => child.kill('SIGKILL')
  process.once('exit', onExit)
  child.once('exit', () => process.off('exit', onExit))
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM')
      await gone
    }
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const port = await waitFor(
      () => {
        if (exited) throw new Error(`prometheus exited:\n${log}`)
        return /msg="Listening on" address=127\.0\.0\.1:(\d+)/.exec(log)?.[1]
      },
      'prometheus to listen',
      { timeoutMs: 15_000, intervalMs: 50 },
    )
    return { url: `http://127.0.0.1:${port}`, output: () => log, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

/** An instant query's results: each series' labels and value. Throws when Prometheus refuses the query. */
export async function query(
  url: string,
  promql: string,
): Promise<Array<{ metric: Record<string, string>; value: number }>> {
  const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`)
  const body = (await res.json()) as {
    status: string
    error?: string
    data?: { result?: Array<{ metric: Record<string, string>; value: [number, string] }> }
  }
  if (body.status !== 'success') throw new Error(`${promql}: ${body.error}`)
  return (body.data?.result ?? []).map((r) => ({ metric: r.metric, value: Number(r.value[1]) }))
}

/** The value of an instant query's first result, or undefined while there is none (or no answer yet). */
export async function queryValue(url: string, promql: string): Promise<number | undefined> {
  try {
    return (await query(url, promql))[0]?.value
  } catch {
    return undefined
  }
}

/**
 * Polls `promql` until its value is `expected` or 30 s have passed (the first samples take a few scrapes to
 * become queryable); returns the last value seen, for the caller to assert.
 */
export async function pollValue(url: string, promql: string, expected: number): Promise<number | undefined> {
  const deadline = Date.now() + 30_000
  let seen: number | undefined
  while (Date.now() < deadline) {
    seen = await queryValue(url, promql)
    if (seen === expected) break
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  return seen
}
