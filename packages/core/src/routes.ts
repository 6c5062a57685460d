import type { Dialect } from './record.js'

/** A path usagewire treats as an LLM endpoint; without `dialect`, the dialect is read from the body. */
export interface RouteRule {
  path: string | RegExp
  dialect?: Dialect
}

/** Anything with `warn` (console, pino, winston): usagewire reports what it could not understand there. */
export interface Logger {
  warn(message: string): void
}

/** The options every adapter takes. */
export interface UsagewireOptions {
  /** Called once per LLM request with its usage record. Errors thrown here are logged, never raised. */
  onUsage?: (record: import('./record.js').UsageRecord) => void
  /**
   * Which request paths are LLM endpoints. Default: paths ending in `/v1/messages` (Anthropic Messages),
   * `/chat/completions` (OpenAI Chat) and `/responses` (OpenAI Responses); every other response is left
   * alone at no cost. A string matches a path suffix; a RegExp is tested against the path.
   */
  routes?: RouteRule[]
  /** An event (or whole JSON body) larger than this passes through untouched. Default 1 MiB. */
  maxEventBytes?: number
  logger?: Logger
}

export const DEFAULT_ROUTES: readonly RouteRule[] = [
  { path: '/v1/messages', dialect: 'anthropic-messages' },
  { path: '/chat/completions', dialect: 'openai-chat' },
  { path: '/responses', dialect: 'openai-responses' },
]

/** The path without its query string and trailing slashes. */
export function routeOf(url: string): string {
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  return path.length > 1 ? path.replace(/\/+$/, '') : path
}

/** The rule a path matches, or undefined when it is not an LLM endpoint. */
export function matchRoute(route: string, rules: readonly RouteRule[] = DEFAULT_ROUTES): RouteRule | undefined {
  for (const rule of rules) {
    if (typeof rule.path === 'string' ? route.endsWith(rule.path) : rule.path.test(route)) return rule
  }
  return undefined
}
