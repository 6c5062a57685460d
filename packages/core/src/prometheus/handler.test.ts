import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { metricsHandler } from './handler.js'
import { prometheusSink } from './sink.js'

const servers: http.Server[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))))
})

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler)
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

describe('metricsHandler', () => {
  it("answers GET with the registry's exposition and content type", async () => {
    const registry = new Registry()
    prometheusSink({ registry })
    const url = await serve(metricsHandler(registry))
    const res = await fetch(`${url}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe(registry.contentType)
    expect(await res.text()).toContain('# TYPE usagewire_requests_total counter')
  })

  it('answers HEAD with headers only and other methods with 405', async () => {
    const url = await serve(metricsHandler(new Registry()))
    const head = await fetch(url, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
    const post = await fetch(url, { method: 'POST', body: 'x' })
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toBe('GET, HEAD')
  })

  it('a registry that fails to collect answers 500, and the server keeps serving', async () => {
    const registry = new Registry()
    registry.registerMetric({
      name: 'broken',
      get: () => Promise.reject(new Error('collector failed')),
    } as unknown as Parameters<Registry['registerMetric']>[0])
    const url = await serve(metricsHandler(registry))
    const first = await fetch(url)
    expect(first.status).toBe(500)
    expect(await first.text()).toContain('collector failed')
    expect((await fetch(url)).status).toBe(500)
  })
})
