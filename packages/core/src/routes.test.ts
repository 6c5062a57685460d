import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { matchRoute, routeOf } from './routes.js'

describe('routes', () => {
  it('a route is the path without its query and its trailing slashes', () => {
    expect(routeOf('/v1/messages?beta=true')).toBe('/v1/messages')
    expect(routeOf('/v1/messages//')).toBe('/v1/messages')
    expect(routeOf('/')).toBe('/')
    expect(routeOf('///')).toBe('')
    expect(routeOf('/v1//messages/?x=/')).toBe('/v1//messages')
    // As the RegExp it replaces takes them off, for any path.
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('/', 'a', '?', 'V') }), (url) => {
        const q = url.indexOf('?')
        const path = q === -1 ? url : url.slice(0, q)
        expect(routeOf(url)).toBe(path.length > 1 ? path.replace(/\/+$/, '') : path)
      }),
    )
  })

  it('matches an LLM endpoint whatever the case of its path', () => {
    expect(matchRoute(routeOf('/V1/Messages/'))?.dialect?.id).toBe('anthropic-messages')
    expect(matchRoute(routeOf('/v1/models'))).toBeUndefined()
  })
})
