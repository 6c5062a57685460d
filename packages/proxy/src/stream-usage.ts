import type { IncomingMessage, ServerResponse } from 'node:http'
import { createMeter, matchRoute, routeOf, type Logger, type Meter } from '@usagewire/core'
import { interceptResponse } from '@usagewire/core/node'

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const asked = (body: Record<string, unknown>): boolean =>
  isObject(body.stream_options) && body.stream_options.include_usage === true

/**
 * `ensureStreamUsage` on the provider-facing listener (docs/sidecar.md#ensurestreamusage): a streaming
 * OpenAI Chat request the gateway sends without `stream_options.include_usage` goes to the provider with
 * it, so the provider's answer carries its usage for the sidecar to read, and the usage-only chunk it
 * brings is left out of the answer the gateway gets, which is then the stream it asked for. Both are
 * core's own `ensureStreamUsage` (docs/truth-sources.md#ensurestreamusage): an Exchange decides on the
 * parsed body and adds the flag, and carries the response, as it does in a gateway's process.
 */
export class StreamUsage {
  private readonly meter: Meter
  private readonly warned = new Set<string>()

  constructor(private readonly logger: Logger | undefined) {
    // Its Exchanges write records nobody reads: the sidecar's records are the client-facing side's.
    this.meter = createMeter({ ensureStreamUsage: true, prices: false, ...(logger && { logger }) })
  }

  /** A request whose body is read whole first: a POST to an OpenAI Chat path (`…/chat/completions`). */
  wants(req: IncomingMessage, path: string): boolean {
    return req.method === 'POST' && matchRoute(routeOf(path))?.dialect?.id === 'openai-chat'
  }

  /**
   * The body to forward for `path`: `body` itself, unless it is a streaming Chat request without the flag;
   * then the same JSON with `stream_options.include_usage: true`, and `res` leaves the usage-only chunk out.
   * A body that is not a JSON object passes as it came.
   */
  apply(res: ServerResponse, path: string, body: Buffer): Buffer {
    let json: unknown
    try {
      json = JSON.parse(body.toString('utf8'))
    } catch {
      return body
    }
    if (!isObject(json) || asked(json)) return body
    const had = 'stream_options' in json
    const exchange = this.meter.begin({ method: 'POST', url: path, body: json })
    if (!exchange || !asked(json)) return body
    interceptResponse(exchange, res)
    // Without `stream_options` (the usual case) the member goes first and every other byte stays; one that
    // said otherwise (`include_usage: false`) is replaced, the body written again from its parse.
    if (had) return Buffer.from(JSON.stringify(json))
    const open = body.indexOf(0x7b) + 1
    return Buffer.concat([
      body.subarray(0, open),
      Buffer.from(`"stream_options":${JSON.stringify(json.stream_options)},`),
      body.subarray(open),
    ])
  }

  /** The provider refused a request the flag was added to: say once, per provider, how to turn it off. */
  refused(status: number, provider: string): void {
    if ((status !== 400 && status !== 422) || this.warned.has(provider)) return
    this.warned.add(provider)
    try {
      this.logger?.warn(
        `usagewire proxy: ${provider} answered ${status} to a streaming Chat request usagewire added ` +
          'stream_options.include_usage to; if it rejects that member, run with --no-ensure-stream-usage ' +
          '(docs/sidecar.md#ensurestreamusage)',
      )
    } catch {
      // A logger that throws is no reason to fail a response.
    }
  }
}
