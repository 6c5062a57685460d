import { DIALECTS, dialectById, type DialectId } from './dialects/registry.js'
import type { DialectSpec } from './dialects/types.js'

/** A path usagewire treats as an LLM endpoint; without `dialect`, the dialect is read from the body. */
export interface RouteRule {
  /** A path suffix (matched case-insensitively, as Express and most upstreams route) or a RegExp. */
  path: string | RegExp
  dialect?: DialectId
}

/** A rule ready to match: its suffix lowercased once, its dialect resolved. */
export interface Route {
  suffix: string | undefined
  pattern: RegExp | undefined
  dialect: DialectSpec | undefined
}

/** The default routes: each dialect's own path suffixes (dialects/registry.ts). */
export const DEFAULT_ROUTES: readonly RouteRule[] = DIALECTS.flatMap((spec) =>
  spec.routes.map((path) => ({ path, dialect: spec.id })),
)

export function compileRoutes(rules: readonly RouteRule[] = DEFAULT_ROUTES): Route[] {
  return rules.map((rule) => ({
    suffix: typeof rule.path === 'string' ? rule.path.toLowerCase() : undefined,
    pattern: typeof rule.path === 'string' ? undefined : rule.path,
    dialect: rule.dialect === undefined ? undefined : dialectById(rule.dialect),
  }))
}

const DEFAULT_COMPILED = compileRoutes()

/** The path without its query string and trailing slashes. */
export function routeOf(url: string): string {
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  // Trailing slashes off, as `/\/+$/` would take them, without running a RegExp on every request.
  if (path.length <= 1 || path.charCodeAt(path.length - 1) !== 0x2f) return path
  let end = path.length - 1
  while (end > 0 && path.charCodeAt(end - 1) === 0x2f) end--
  return path.slice(0, end)
}

/**
 * The route a path matches, or undefined when it is not an LLM endpoint. Suffixes match whatever the
 * case (`/V1/MESSAGES` reaches the same handler in Express, so it must be metered the same); a RegExp
 * is tested as given.
 */
export function matchRoute(route: string, routes: readonly Route[] = DEFAULT_COMPILED): Route | undefined {
  for (const rule of routes) {
    if (rule.suffix !== undefined) {
      if (endsWithAnyCase(route, rule.suffix)) return rule
    } else if (rule.pattern!.test(route)) {
      return rule
    }
  }
  return undefined
}

/** `route` ends with `suffix` (lowercase), ignoring ASCII case; no string is made per request. */
function endsWithAnyCase(route: string, suffix: string): boolean {
  const offset = route.length - suffix.length
  if (offset < 0) return false
  for (let i = 0; i < suffix.length; i++) {
    let c = route.charCodeAt(offset + i)
    if (c >= 0x41 && c <= 0x5a) c |= 0x20
    if (c !== suffix.charCodeAt(i)) return false
  }
  return true
}
