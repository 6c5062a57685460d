/**
 * What every matrix scenario runs on: the Rig (the shared mock upstream, this driver's gateways, their
 * records) and the checks scenarios share. A scenario is a name and `run(rig)`; the matrix
 * (./matrix.test.ts) runs each one against every driver.
 */
import http from 'node:http'
import type { UsageRecord, UsagewireOptions } from '@usagewire/core'
import { inspect } from '@usagewire/core/testing'
import { expect } from 'vitest'
import { rawRequest, type RawResponse, type RequestOptions } from './client.js'
import type { Driver, Gateway } from './driver.js'
import { chatCompletion, createGate, JSON_HEADERS, waitFor, type Gate, type Upstream } from './upstream.js'

// ---------------------------------------------------------------------------------------------------------
// The rig

/** A gateway configuration: the framework's compression in front, and usagewire options (onUsage is the rig's). */
export interface Config {
  compress?: boolean
  options?: Omit<UsagewireOptions, 'onUsage' | 'sinks'>
}

export interface Rig {
  driver: Driver
  upstream: Upstream
  /** The base URL of this driver's gateway for `config`: started on first use, then reused. */
  gateway(config?: Config): Promise<string>
  /** A fresh `x-request-id`: the id of the record the request yields. */
  id(): string
  /** Resolves with the record whose id is `id`. */
  record(id: string): Promise<UsageRecord>
  /** Every record this driver's gateways delivered, in order. */
  records: UsageRecord[]
  /** A gate the upstream can wait on; the matrix opens every gate after each scenario. */
  gate(): Gate
}

/**
 * A Rig for `driver` in front of `upstream` (one per test file). Gateways start on first use, one per
 * distinct configuration; `close()` closes them all; `openGates()` lets every held upstream go on.
 */
export function createRig(driver: Driver, upstream: Upstream): Rig & { close(): Promise<void>; openGates(): void } {
  const gates: Gate[] = []
  const records: UsageRecord[] = []
  const started = new Map<string, Promise<Gateway>>()
  let requests = 0
  const slug = driver.name.replace(/[^a-z0-9]+/gi, '-')
  return {
    driver,
    upstream,
    records,
    async gateway(config = {}) {
      const key = JSON.stringify(config, (_, v: unknown) => (v instanceof RegExp ? String(v) : v))
      let gateway = started.get(key)
      if (!gateway) {
        gateway = driver.start({
          upstream: upstream.url,
          usagewire: { ...config.options, onUsage: (record) => void records.push(record) },
          ...(config.compress ? { compress: true } : {}),
        })
        started.set(key, gateway)
      }
      return (await gateway).url
    },
    id: () => `matrix-${slug}-${++requests}`,
    record: (id) => waitFor(() => records.find((r) => r.id === id), `the usage record of ${id}`, { timeoutMs: 3_000 }),
    gate() {
      const g = createGate()
      gates.push(g)
      return g
    },
    openGates() {
      for (const g of gates.splice(0)) g.open() // never leave an upstream loop waiting
    },
    async close() {
      const all = await Promise.allSettled(started.values())
      for (const g of all) if (g.status === 'fulfilled') await g.value.close()
    },
  }
}

// ---------------------------------------------------------------------------------------------------------
// What scenarios share

export interface Scenario {
  name: string
  run(rig: Rig): Promise<void>
}

export const post = (id: string, body: unknown = {}, headers: Record<string, string> = {}): RequestOptions => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', 'x-request-id': id, ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
})

/** The record without what legitimately differs between two runs. */
export function comparable(record: UsageRecord): unknown {
  const { id: _id, timing: _timing, ...rest } = record
  return JSON.parse(JSON.stringify(rest))
}

/** What inspect() (the processor alone, already pinned by the corpus) says for this body: the oracle. */
export function oracle(
  body: Buffer | string,
  path: string,
  contentType: string,
  extra: { httpStatus?: number; maxEventBytes?: number; abortAfterBytes?: number } = {},
) {
  return inspect(body, { path, contentType, ...extra })
}

/** Byte equality, shown as text first so a failure reads as a diff. */
export function expectBytes(actual: Buffer, expected: Buffer, what = 'body'): void {
  expect(actual.toString('utf8'), what).toBe(expected.toString('utf8'))
  expect(actual.equals(expected), `${what} (bytes)`).toBe(true)
}

/** A Content-Length, when the gateway sends one, counts the bytes it sent. */
export function expectHonestLength(res: RawResponse): void {
  if (res.headers['content-length'] !== undefined) expect(res.headers['content-length']).toBe(String(res.body.length))
}

export function expectRecordAsOracle(record: UsageRecord, expected: UsageRecord): void {
  expect(comparable(record)).toEqual(comparable(expected))
}

/** A record that says `usage` about this response, complete and final. */
export const COMPLETE = { status: 'complete', final: true } as const

/**
 * No record came from the requests since `mark`: a sentinel LLM request goes last
 * (on `agent` when given, so a response that broke its connection's framing shows), and once its record
 * is in, every record of an earlier finished response would be too.
 */
export async function expectNoOtherRecords(rig: Rig, url: string, mark: number, agent?: http.Agent) {
  const id = rig.id()
  rig.upstream.reply = () => ({
    headers: JSON_HEADERS,
    body: JSON.stringify(chatCompletion({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 })),
  })
  const res = await rawRequest(`${url}/v1/chat/completions`, { ...post(id), ...(agent ? { agent } : {}) })
  expect(res.status).toBe(200)
  expect(JSON.parse(res.body.toString('utf8')).usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 2 })
  await rig.record(id)
  const others = rig.records.slice(mark).filter((r) => r.id !== id)
  expect(others.map((r) => `${r.method} ${r.route} ${r.status}`)).toEqual([])
}
