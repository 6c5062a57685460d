/**
 * `usagewire proxy` as a process: flags and a config file, records on stdout, /metrics, and a graceful
 * stop on SIGTERM that lets a response in flight finish.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseProxyArgs } from '@usagewire/proxy'
import { afterEach, describe, expect, it } from 'vitest'
import { listen, shut } from '../express/helpers.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const CLI = join(ROOT, 'packages/proxy/src/cli.ts')

const sse = (name: string, data: object) => `event: ${name}\ndata: ${JSON.stringify({ type: name, ...data })}\n\n`

/** An Anthropic gateway whose final event omits the prompt (usagewire completes it), slow when asked. */
async function gateway() {
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', async () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(
        sse('message_start', {
          message: { id: 'm', model: 'claude-x', usage: { input_tokens: 40, output_tokens: 1 } },
        }),
      )
      if (req.url?.includes('slow')) await new Promise((r) => setTimeout(r, 400))
      res.write(sse('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 9 } }))
      res.end(sse('message_stop', {}))
    })
  })
  return { url: await listen(server), close: () => shut(server) }
}

const running: ChildProcess[] = []
const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const child of running.splice(0)) child.kill('SIGKILL')
  for (const step of cleanup.splice(0)) await step()
})

function start(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d) => (stdout += d))
  child.stderr!.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const url = new Promise<string>((resolve, reject) => {
    const check = () => {
      const match = /clients → (http:\/\/[\d.]+:\d+)/.exec(stderr)
      if (match) resolve(match[1]!)
    }
    child.stderr!.on('data', check)
    void exited.then((code) => reject(new Error(`exited ${code}: ${stderr}`)))
  })
  url.catch(() => {}) // a test that expects the exit does not wait for the URL
  return { child, url, exited, out: () => stdout, err: () => stderr }
}

describe('usagewire proxy (the CLI)', () => {
  it('proxies, prints one record per request, serves /metrics, and stops gracefully on SIGTERM', async () => {
    const gw = await gateway()
    cleanup.push(gw.close)
    const proxy = start(['--listen', '127.0.0.1:0', '--target', gw.url, '--records'])
    const url = await proxy.url
    const body = await (await fetch(`${url}/v1/messages`, { method: 'POST', body: '{}' })).text()
    const delta = body.split('\n\n').find((event) => event.startsWith('event: message_delta'))!
    expect(JSON.parse(delta.slice(delta.indexOf('data: ') + 6)).usage).toEqual({ input_tokens: 40, output_tokens: 9 })
    const metrics = await (await fetch(`${url}/metrics`)).text()
    expect(metrics).toMatch(/usagewire_.*input/)
    // A response in flight when SIGTERM comes still finishes.
    const slow = fetch(`${url}/v1/messages?slow=1`, { method: 'POST', body: '{}' }).then((r) => r.text())
    await new Promise((r) => setTimeout(r, 100))
    proxy.child.kill('SIGTERM')
    expect(await slow).toContain('message_stop')
    expect(await proxy.exited).toBe(0)
    const records = proxy
      .out()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
    expect(records).toHaveLength(2)
    expect(records[0]).toMatchObject({ route: '/v1/messages', usage: { input: 40, output: 9 }, status: 'complete' })
    expect(proxy.err()).toContain('SIGTERM')
  })

  it('takes its options from a config file, flags winning', async () => {
    const gw = await gateway()
    cleanup.push(gw.close)
    const dir = mkdtempSync(join(tmpdir(), 'usagewire-proxy-'))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const config = join(dir, 'proxy.json')
    writeFileSync(config, JSON.stringify({ listen: '127.0.0.1:1', target: gw.url, metrics: false }))
    const proxy = start(['--config', config, '--listen', '127.0.0.1:0'])
    const url = await proxy.url
    // Not served by the sidecar: the path goes on to the gateway like any other.
    expect(await (await fetch(`${url}/metrics`)).text()).not.toMatch(/usagewire_/)
    expect(await (await fetch(`${url}/v1/messages`, { method: 'POST', body: '{}' })).text()).toContain('message_stop')
  })

  it('says what is wrong with its arguments, and exits 2', async () => {
    const proxy = start(['--listen', '127.0.0.1:0'])
    expect(await proxy.exited).toBe(2)
    expect(proxy.err()).toMatch(/--listen and --target/)
    const help = start(['--help'])
    expect(await help.exited).toBe(0)
    expect(help.out()).toMatch(/--provider-listen/)
  })
})

describe('parseProxyArgs: ensureStreamUsage', () => {
  const base = ['--listen', '0', '--target', 'http://127.0.0.1:9']

  it('is left to the default (on) unless a flag or the config file says', () => {
    expect(parseProxyArgs(base).ensureStreamUsage).toBeUndefined()
    expect(parseProxyArgs([...base, '--no-ensure-stream-usage']).ensureStreamUsage).toBe(false)
    expect(parseProxyArgs([...base, '--ensure-stream-usage']).ensureStreamUsage).toBe(true)
    expect(() => parseProxyArgs([...base, '--ensure-stream-usage', '--no-ensure-stream-usage'])).toThrow(/not both/)
  })

  it('takes the config file key, flags winning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'usagewire-proxy-'))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const config = join(dir, 'proxy.json')
    writeFileSync(config, JSON.stringify({ ensureStreamUsage: false }))
    expect(parseProxyArgs([...base, '--config', config]).ensureStreamUsage).toBe(false)
    expect(parseProxyArgs([...base, '--config', config, '--ensure-stream-usage']).ensureStreamUsage).toBe(true)
  })
})
