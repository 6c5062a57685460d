// koa-proxies ships no types: the part the Koa example uses.
declare module 'koa-proxies' {
  import type { IncomingMessage, ServerResponse } from 'node:http'
  import type { Context, Middleware } from 'koa'

  interface ProxyOptions {
    target: string
    changeOrigin?: boolean
    logs?: boolean
    rewrite?: (path: string) => string
    events?: {
      proxyRes?: (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) => void
      error?: (error: Error, req: IncomingMessage, res: ServerResponse) => void
    }
  }

  function proxy(
    path: string,
    options: ProxyOptions | ((params: Record<string, string>, ctx: Context) => ProxyOptions | false),
  ): Middleware

  export = proxy
}
