import { validatePrices, type PricesOption } from './cost/price.js'
import { DIALECT_IDS } from './dialects/registry.js'
import type { RouteRule } from './routes.js'
import type { SinkLike } from './sinks.js'
import type { UsageRecord } from './record.js'

import type { Logger } from './log.js'
import type { MessageStartPolicy, RequestInfo } from './exchange.js'

const POLICIES: readonly string[] = ['patch-final', 'hold', 'estimate']

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
  /**
   * What the client-facing Anthropic `message_start` does while the prompt's true counts are not known
   * (docs/truth-sources.md#message_start-policies), for clients that read the prompt from it alone:
   * - `'patch-final'` (default): it is filled when the truth is known already; the final usage event is
   *   always completed. Nothing waits.
   * - `'hold'`: it, and what follows, waits until the prompt's true counts are known (the upstream tap's,
   *   or the stream's own final usage) or `maxHoldMs` passes: exact counts for the time to first token.
   * - `'estimate'`: a start that says 0 gets an estimate of the request's prompt at once (`estimateInput`),
   *   marked `estimate:request` in the record's sources; the final usage event carries the exact counts.
   * A function chooses per request (by route, by client).
   */
  messageStart?: MessageStartPolicy | ((request: RequestInfo) => MessageStartPolicy)
  /** The longest a held `message_start` waits, in ms. Default 5000. */
  maxHoldMs?: number
  /**
   * Estimates a request body's prompt tokens for the `estimate` policy: `estimateInputTokens` from
   * `@usagewire/core/estimate`, or your own.
   */
  estimateInput?: (body: unknown, dialect: string | undefined) => number | undefined
  /**
   * For a streaming OpenAI Chat request without `stream_options.include_usage`: add it to the parsed
   * request body the gateway forwards, and leave the usage-only chunk it brings out of the client's stream,
   * so the record is exact and the client sees what it asked for (docs/truth-sources.md#ensurestreamusage).
   * Needs the parsed body (`express.json()` before usagewire, Fastify, a Koa body parser). Default false.
   */
  ensureStreamUsage?: boolean
  /**
   * A client that leaves before the response ends (docs/truth-sources.md#aborts):
   * - `'cancel'` (default): the upstream is cancelled, as the gateway does; the record holds the usage
   *   known then (and an output estimate, with `estimateOutput`).
   * - `'drain'`: the upstream body is read to its end, unseen by anyone, so the record holds the
   *   provider's final usage: what the provider bills. Where usagewire reads it: the http-proxy-middleware
   *   plugin once the upstream answered, and provider calls read by the upstream tap over fetch/undici.
   */
  onAbort?: 'cancel' | 'drain'
  /** The longest the upstream is read on after the client left (`onAbort: 'drain'`), in ms. Default 30000. */
  maxDrainMs?: number
  /**
   * Estimates tokens of generated text: for a response the client left before its final usage, the
   * record's output is estimated from the text streamed so far (`estimate:streamed-text` in its sources)
   * when that is more than the partial count known. `estimateOutputTokens` from `@usagewire/core/estimate`,
   * or your own. Every event is then parsed for its text: leave it unset where that cost matters.
   */
  estimateOutput?: (text: string) => number
}

/** Options are checked once, when the middleware is created: a mistake there is the developer's to see. */
export function validateOptions(options: UsagewireOptions): void {
  const { onUsage, sinks, routes, maxEventBytes, logger, attributes, prices } = options
  validatePrices(prices)
  const { messageStart, maxHoldMs, estimateInput, ensureStreamUsage } = options
  if (messageStart !== undefined && typeof messageStart !== 'function' && !POLICIES.includes(messageStart))
    throw new TypeError(`usagewire: messageStart must be one of ${POLICIES.join(', ')} or a function of the request`)
  if (messageStart === 'estimate' && typeof estimateInput !== 'function')
    throw new TypeError(
      "usagewire: messageStart 'estimate' needs estimateInput (e.g. estimateInputTokens from @usagewire/core/estimate)",
    )
  if (estimateInput !== undefined && typeof estimateInput !== 'function')
    throw new TypeError('usagewire: estimateInput must be a function of the request body')
  if (maxHoldMs !== undefined && !(Number.isFinite(maxHoldMs) && maxHoldMs >= 0))
    throw new TypeError('usagewire: maxHoldMs must be a number of milliseconds, 0 or more')
  const { onAbort, maxDrainMs, estimateOutput } = options
  if (onAbort !== undefined && onAbort !== 'cancel' && onAbort !== 'drain')
    throw new TypeError("usagewire: onAbort must be 'cancel' or 'drain'")
  if (maxDrainMs !== undefined && !(Number.isFinite(maxDrainMs) && maxDrainMs >= 0))
    throw new TypeError('usagewire: maxDrainMs must be a number of milliseconds, 0 or more')
  if (estimateOutput !== undefined && typeof estimateOutput !== 'function')
    throw new TypeError('usagewire: estimateOutput must be a function of the text')
  if (ensureStreamUsage !== undefined && typeof ensureStreamUsage !== 'boolean')
    throw new TypeError('usagewire: ensureStreamUsage must be true or false')
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
