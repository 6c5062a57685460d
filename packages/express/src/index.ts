import type { UsagewireOptions } from '@usagewire/core'
import { createInterceptor, parsedBody, runInExchange } from '@usagewire/core/node'

export { exchangeOf } from '@usagewire/core/node'
import type { IncomingMessage, ServerResponse } from 'node:http'

export type { UsageRecord, UsagewireOptions, RouteRule, Logger, Dialect, Sink } from '@usagewire/core'

/** The shape of an Express (4 or 5) middleware, without depending on Express's types. */
export type UsagewireMiddleware = ((
  req: IncomingMessage & { originalUrl?: string; body?: unknown },
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void) & {
  /** Records delivered and sink failures so far. */
  readonly stats: Readonly<{ records: number; failures: number }>
}

/**
 * Express middleware: every LLM response that passes through it leaves with complete, consistent usage,
 * and `onUsage` receives one record per request. Mount it before the proxy or handler that streams the
 * LLM response:
 *
 *   app.use('/v1', usagewire({ onUsage: (record) => log.info(record) }))
 *   app.use('/v1', createProxyMiddleware({ target: 'https://api.anthropic.com/v1' }))
 */
export function usagewire(options: UsagewireOptions = {}): UsagewireMiddleware {
  const intercept = createInterceptor(options)
  const middleware = function usagewireMiddleware(
    req: IncomingMessage & { originalUrl?: string; body?: unknown },
    res: ServerResponse,
    next: (error?: unknown) => void,
  ) {
    let exchange
    try {
      // originalUrl keeps the mount path Express strips from req.url, so routes match the full path; a
      // body parsed before this middleware tells the model and whether a stream was asked for.
      exchange = intercept(req, res, req.originalUrl ?? req.url, parsedBody(req))
    } catch (error) {
      options.logger?.warn(`usagewire: could not wrap the response: ${(error as Error).message}`)
    }
    // The rest of the request runs inside its Exchange: the upstream tap ties the gateway's calls to it.
    if (exchange) runInExchange(exchange, next)
    else next()
  }
  return Object.assign(middleware, { stats: intercept.meter.stats })
}

export default usagewire
