/** A header lookup: Node's `res.getHeader`, a Fetch `Headers#get`, Koa's `ctx.response.get`. */
export type HeaderLookup = (name: string) => string | number | readonly string[] | null | undefined
