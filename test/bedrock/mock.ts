/**
 * A mock Bedrock Runtime and the AWS SDK client pointed at an Express gateway in front of it (usagewire +
 * http-proxy-middleware), for the Bedrock tests. Everything on 127.0.0.1.
 */
import http, { type Server } from 'node:http'
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { afterEach } from 'vitest'
import { listen, shut, startGateway, type Gateway } from '../express/helpers.js'

export interface Mock {
  url: string
  paths: string[]
  close(): Promise<void>
}

export type MockReply = (path: string) => { type: string; body: Buffer; headers?: Record<string, string> }

/** Writes each frame on its own, split in two, as a network would; no Content-Length (chunked), as AWS does. */
async function mockBedrock(reply: MockReply): Promise<Mock> {
  const paths: string[] = []
  const server: Server = http.createServer((req, res) => {
    req.resume()
    req.on('end', async () => {
      paths.push(req.url ?? '')
      const { type, body, headers } = reply(req.url ?? '')
      res.writeHead(200, { 'content-type': type, 'x-amzn-requestid': 'req-bdrk-1', ...headers })
      for (let pos = 0; pos < body.length;) {
        const size = type.includes('eventstream') ? body.readUInt32BE(pos) : body.length
        const half = Math.ceil(size / 2)
        res.write(body.subarray(pos, pos + half))
        await new Promise((r) => setImmediate(r))
        res.write(body.subarray(pos + half, pos + size))
        pos += size
      }
      res.end()
    })
  })
  const url = await listen(server)
  return { url, paths, close: () => shut(server) }
}

/** The SDK's client as an application builds it, sending to `endpoint` over HTTP/1.1. */
export const client = (endpoint: string) =>
  new BedrockRuntimeClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    requestHandler: new NodeHttpHandler(),
    maxAttempts: 1,
  })

/** A mock Bedrock answering with `reply` and a gateway in front of it, both closed after the test. */
export function useRig(): (reply: MockReply) => Promise<{ mock: Mock; gateway: Gateway }> {
  let open: Array<{ close(): Promise<void> }> = []
  afterEach(async () => {
    await Promise.all(open.map((s) => s.close()))
    open = []
  })
  return async (reply) => {
    const mock = await mockBedrock(reply)
    const gateway = await startGateway(mock.url)
    open.push(gateway, mock)
    return { mock, gateway }
  }
}
