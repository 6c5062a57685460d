/**
 * The processes of the end-to-end and callgrind benchmarks, each forked by bench/procs.ts with
 * `node --import tsx --expose-gc bench/child.ts <role>` (for row 8, under valgrind):
 *
 *   upstream             a node:http server streaming Anthropic SSE as fast as it can, in three modes
 *                        chosen by the `x-bench-mode` request header:
 *                          full  (default) 200 events of ~131 bytes, written as 8 back-to-back chunks;
 *                          hold  message_start, content_block_start, ping and 5 deltas, then nothing
 *                                until the client goes away (an open stream mid-generation);
 *                          flood content_block_delta events without end, honouring res.write()'s
 *                                backpressure, until FLOOD_CAP bytes or the client goes away;
 *                          paced the full response one event per write, one write every PACED_EVERY_MS
 *                                per stream, as a provider streams tokens.
 *   gateway bare|usagewire <upstream url>
 *                        express 5 + http-proxy-middleware 3 to the upstream (keep-alive agent); with `usagewire`,
 *                        `app.use(usagewire({ onUsage }))` before the proxy. Row 8 points it at an upstream
 *                        in the bench process (bench/callgrind.bench.ts).
 *   gateway burn:<µs> <upstream url>
 *                        the bare gateway, spending <µs> of CPU in a busy loop at the start of every request:
 *                        what any code that costs that much per response costs this gateway (row 4h).
 *   framework koa|fastify|http-proxy-middleware bare|usagewire <upstream url>
 *                        the other adapters' gateways (bench/frameworks.ts), for row 4g.
 *
 * All answer IPC questions from the parent ({ id, cmd }) with { id, reply }.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Socket } from 'node:net'
import express from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { usagewire } from '@usagewire/express'
import type { Framework } from './frameworks.js'
import {
  anthropicBenchStream,
  E2E_DELTAS,
  E2E_WRITES,
  eventGroups,
  FLOOD_CAP,
  HOLD_EVENTS,
  PACED_EVERY_MS,
  SSE,
} from './streams.js'

type Ask = { id: number; cmd: string }

function serve(handler: (cmd: string) => unknown | Promise<unknown>): void {
  // A bench that dies (or is interrupted) must not leave servers behind.
  process.on('disconnect', () => process.exit(0))
  process.on('message', (msg: Ask) => {
    if (msg.cmd === 'exit') process.exit(0)
    void Promise.resolve(handler(msg.cmd)).then((reply) => process.send!({ id: msg.id, reply }))
  })
}

function memory(collect: boolean) {
  if (collect) for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.()
  return process.memoryUsage()
}

async function upstream(): Promise<void> {
  const stream = anthropicBenchStream(E2E_DELTAS, 0)
  const full = eventGroups(stream, E2E_WRITES)
  const hold = Buffer.concat(stream.events.slice(0, HOLD_EVENTS))
  const floodHead = Buffer.concat(stream.events.slice(0, 3))
  const deltas = stream.events.filter((e) => e.includes('content_block_delta'))
  const floodBlock = Buffer.concat(Array.from({ length: 500 }, (_, i) => deltas[i % deltas.length]!))
  let holds = 0
  let flood = { sent: 0, waits: 0, waiting: false, open: 0 }
  // Paced streams advance together, one event each per tick of one clock.
  const paced = new Set<{ res: http.ServerResponse; next: number }>()
  let clock: NodeJS.Timeout | undefined
  const tick = () => {
    for (const flow of paced) {
      if (flow.res.destroyed) {
        paced.delete(flow)
        continue
      }
      const event = stream.events[flow.next++]!
      if (flow.next < stream.events.length) flow.res.write(event)
      else {
        paced.delete(flow)
        flow.res.end(event)
      }
    }
    if (paced.size === 0) {
      clearInterval(clock)
      clock = undefined
    }
  }

  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      const mode = req.headers['x-bench-mode']
      res.writeHead(200, { 'content-type': SSE, 'cache-control': 'no-cache', 'request-id': 'req_bench' })
      if (mode === 'hold') {
        holds++
        res.on('close', () => holds--)
        res.write(hold)
        return
      }
      if (mode === 'paced') {
        paced.add({ res, next: 0 })
        clock ??= setInterval(tick, PACED_EVERY_MS)
        return
      }
      if (mode === 'flood') {
        flood = { sent: 0, waits: 0, waiting: false, open: 1 }
        const state = flood
        res.on('close', () => (state.open = 0))
        res.write(floodHead)
        const pump = () => {
          state.waiting = false
          while (!res.destroyed && state.sent < FLOOD_CAP) {
            state.sent += floodBlock.length
            if (!res.write(floodBlock)) {
              state.waits++
              state.waiting = true
              res.once('drain', pump)
              return
            }
          }
          if (!res.destroyed) res.end()
        }
        pump()
        return
      }
      for (const chunk of full) res.write(chunk)
      res.end()
    })
  })
  server.keepAliveTimeout = 60_000
  server.maxConnections = 10_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  serve((cmd) => {
    if (cmd === 'holds') return holds
    if (cmd === 'cpu') return process.cpuUsage()
    if (cmd === 'flood') return { ...flood }
    if (cmd === 'connections') return new Promise((resolve) => server.getConnections((_e, n) => resolve(n)))
    return null
  })
  process.send!({ ready: (server.address() as AddressInfo).port, streamBytes: stream.bytes, holdBytes: hold.length })
}

interface Tracked {
  res: http.ServerResponse
  proxyRes?: http.IncomingMessage
  writes: number
  falses: number
  /** write() said true while the response needed a drain: the writer was told to keep going. */
  liedTrue: number
  bytesIn: number
}

async function gateway(mode: string, target: string): Promise<void> {
  let records = 0
  const statuses: Record<string, number> = {}
  const tracked = new Map<http.ServerResponse, Tracked>()
  const app = express()
  app.disable('x-powered-by')
  app.disable('etag')

  // Slow-client probe, only on flood requests: which responses are open, and (installed after usagewire
  // wrapped res.write) what the proxy's write() calls were told.
  app.use((req, res, next) => {
    if (req.headers['x-bench-mode'] === 'flood') {
      const t: Tracked = { res, writes: 0, falses: 0, liedTrue: 0, bytesIn: 0 }
      tracked.set(res, t)
      res.on('close', () => tracked.delete(res))
    }
    next()
  })
  if (mode.startsWith('burn:')) {
    const burn = Number(mode.slice('burn:'.length)) * 1000
    app.use((_req, _res, next) => {
      const until = process.hrtime.bigint() + BigInt(burn)
      while (process.hrtime.bigint() < until);
      next()
    })
  }
  if (mode === 'usagewire') {
    app.use(
      usagewire({
        onUsage: (r) => {
          records++
          statuses[r.status] = (statuses[r.status] ?? 0) + 1
        },
      }),
    )
  }
  app.use((_req, res, next) => {
    const t = tracked.get(res)
    if (t) {
      const write = res.write as (...args: unknown[]) => boolean
      res.write = function spiedWrite(this: http.ServerResponse, ...args: unknown[]) {
        const ok = write.apply(this, args)
        t.writes++
        if (!ok) t.falses++
        else if (res.writableNeedDrain) t.liedTrue++
        return ok
      } as http.ServerResponse['write']
    }
    next()
  })
  // A keep-alive agent to the upstream, as a production gateway has: without one, http-proxy sends
  // `connection: close` and every request pays a TCP connect (and leaves a TIME_WAIT socket behind).
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 })
  app.use(
    createProxyMiddleware({
      target,
      changeOrigin: true,
      agent,
      on: {
        proxyRes: (proxyRes, _req, res) => {
          const t = tracked.get(res as http.ServerResponse)
          if (t) {
            t.proxyRes = proxyRes
            proxyRes.on('data', (c: Buffer) => (t.bytesIn += c.length))
          }
        },
      },
    }),
  )
  const server = http.createServer(app)
  server.keepAliveTimeout = 60_000
  server.maxConnections = 10_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const sockets = new Set<Socket>()
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })

  serve((cmd) => {
    if (cmd === 'heap') return { ...memory(true), sockets: sockets.size }
    if (cmd === 'cpu') return process.cpuUsage()
    if (cmd === 'stats') return { records, statuses }
    if (cmd === 'sample') {
      const list = [...tracked.values()].map((t) => ({
        resWritableLength: t.res.writableLength,
        socketWritableLength: t.res.socket?.writableLength ?? 0,
        proxyResReadableLength: t.proxyRes?.readableLength ?? 0,
        writes: t.writes,
        falses: t.falses,
        liedTrue: t.liedTrue,
        bytesIn: t.bytesIn,
      }))
      return { responses: list, memory: memory(false) }
    }
    return null
  })
  process.send!({ ready: (server.address() as AddressInfo).port })
}

async function framework(name: Framework, mode: string, target: string): Promise<void> {
  let records = 0
  const statuses: Record<string, number> = {}
  // Loaded only here, so the Express gateways of rows 4–8 load nothing of the other frameworks.
  const { frameworkGateway } = await import('./frameworks.js')
  const server = await frameworkGateway(name, mode === 'usagewire', target, (r) => {
    records++
    statuses[r.status] = (statuses[r.status] ?? 0) + 1
  })
  serve((cmd) => {
    if (cmd === 'cpu') return process.cpuUsage()
    if (cmd === 'stats') return { records, statuses }
    return null
  })
  process.send!({ ready: (server.address() as AddressInfo).port })
}

const [role, arg1, arg2, arg3] = process.argv.slice(2)
if (role === 'upstream') await upstream()
else if (role === 'gateway') await gateway(arg1 ?? 'bare', arg2 ?? '')
else if (role === 'framework') await framework(arg1 as Framework, arg2 ?? 'bare', arg3 ?? '')
else throw new Error(`bench/child.ts: unknown role ${role}`)
