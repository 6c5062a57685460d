import { createPricer } from './cost/price.js'
import type { DialectSpec } from './dialects/types.js'
import { Exchange, type RequestInfo } from './exchange.js'
import { validateOptions, type UsagewireOptions } from './options.js'
import { compileRoutes, matchRoute, routeOf, type Route } from './routes.js'
import { Sinks, type SinkLike, type SinkStats } from './sinks.js'

/**
 * One per `usagewire(options)`: the options checked once, the routes compiled, the sinks every record
 * goes to. Adapters ask it for an Exchange per request.
 */
export interface Meter {
  /** An Exchange for this request, or undefined when it is not an LLM request (path, method). */
  begin(request: RequestInfo): Exchange | undefined
  readonly options: Readonly<UsagewireOptions>
  /** Records delivered and sink failures so far. */
  readonly stats: Readonly<SinkStats>
}

/** Methods that can never carry an LLM answer: no Exchange, no record. */
const NO_ANSWER = new Set(['OPTIONS', 'HEAD', 'TRACE', 'CONNECT'])

export function createMeter(options: UsagewireOptions = {}): Meter {
  validateOptions(options)
  const routes: readonly Route[] = compileRoutes(options.routes)
  const all: SinkLike[] = []
  if (options.onUsage) all.push({ name: 'onUsage', write: options.onUsage })
  if (options.sinks) all.push(...options.sinks)
  const sinks = new Sinks(all, options.logger)
  const context = {
    sinks,
    logger: options.logger,
    maxEventBytes: options.maxEventBytes,
    attributes: options.attributes,
    price: createPricer(options.prices),
    messageStart: options.messageStart,
    maxHoldMs: options.maxHoldMs,
    estimateInput: options.estimateInput,
    ensureStreamUsage: options.ensureStreamUsage,
    onAbort: options.onAbort,
    maxDrainMs: options.maxDrainMs,
    estimateOutput: options.estimateOutput,
  }
  return {
    options,
    stats: sinks.stats,
    begin(request) {
      if (NO_ANSWER.has(request.method) || NO_ANSWER.has(request.method.toUpperCase())) return undefined
      const route = routeOf(request.url)
      const rule = matchRoute(route, routes)
      if (!rule) return undefined
      return new Exchange(request, route, rule.dialect satisfies DialectSpec | undefined, context)
    },
  }
}
