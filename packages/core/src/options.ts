import { validatePrices, type PricesOption } from './cost/price.js'
import { DIALECT_IDS } from './dialects/registry.js'
import type { RouteRule } from './routes.js'
import type { SinkLike } from './sinks.js'
import type { UsageRecord } from './record.js'

import type { Logger } from './log.js'
import type { RequestInfo } from './exchange.js'

export type { Logger }

/** The options every adapter takes. */
export interface UsagewireOptions {
  /**
   * Called once per LLM request with its usage record: the first sink. It may be async; a throw or a
   * rejection is logged and counted, never raised, and the response never waits for it.
   */
  onUsage?: (record: UsageRecord) => unknown
  /** More places the record goes to (metrics, traces, a durable ledger), after `onUsage`. */
  sinks?: SinkLike[]
  /**
   * Which request paths are LLM endpoints. Default: paths ending in `/v1/messages` (Anthropic Messages),
   * `/chat/completions` (OpenAI Chat) and `/responses` (OpenAI Responses), whatever their case; every
   * other response is left alone at no cost. A string matches a path suffix case-insensitively; a
   * RegExp is tested against the path as given.
   */
  routes?: RouteRule[]
  /**
   * An event (or whole JSON body) larger than this is not held: it leaves as it arrives, its usage read
   * on the way but not rewritten (the record says so). Default 1 MiB.
   */
  maxEventBytes?: number
  /**
   * Labels of your own for each record, from the request (a team, an API key's name, a tenant):
   * `record.attributes`, which the metrics and trace sinks turn into labels and attributes. Called once
   * per LLM request when it begins; a throw is logged and leaves the record without attributes.
   */
  attributes?: (request: RequestInfo) => Record<string, string> | undefined
  /**
   * List prices for `record.cost` (docs/cost.md). Default: the built-in table. `{ table }` replaces it,
   * `{ extend }` adds entries to it (or to `table`) and wins over its entries of the same id; `false` turns
   * cost off. A model with no entry gets no cost.
   */
  prices?: PricesOption
  logger?: Logger
}

/** Options are checked once, when the middleware is created: a mistake there is the developer's to see. */
export function validateOptions(options: UsagewireOptions): void {
  const { onUsage, sinks, routes, maxEventBytes, logger, attributes, prices } = options
  validatePrices(prices)
  if (attributes !== undefined && typeof attributes !== 'function')
    throw new TypeError('usagewire: attributes must be a function of the request')
  if (onUsage !== undefined && typeof onUsage !== 'function')
    throw new TypeError('usagewire: onUsage must be a function')
  if (sinks !== undefined) {
    if (!Array.isArray(sinks)) throw new TypeError('usagewire: sinks must be an array')
    for (const sink of sinks) {
      if (typeof sink !== 'function' && typeof (sink as { write?: unknown })?.write !== 'function') {
        throw new TypeError('usagewire: each sink must be a function or have write(record)')
      }
    }
  }
  if (maxEventBytes !== undefined && !(Number.isInteger(maxEventBytes) && maxEventBytes > 0)) {
    throw new TypeError('usagewire: maxEventBytes must be a positive integer')
  }
  if (logger !== undefined && typeof logger?.warn !== 'function')
    throw new TypeError('usagewire: logger must have warn()')
  if (routes === undefined) return
  if (!Array.isArray(routes)) throw new TypeError('usagewire: routes must be an array of { path, dialect? }')
  for (const rule of routes) {
    if (typeof rule?.path !== 'string' && !(rule?.path instanceof RegExp)) {
      throw new TypeError('usagewire: each route needs a path (a string suffix or a RegExp)')
    }
    if (rule.dialect !== undefined && !DIALECT_IDS.includes(rule.dialect)) {
      throw new TypeError(`usagewire: unknown dialect "${String(rule.dialect)}" (one of ${DIALECT_IDS.join(', ')})`)
    }
  }
}
