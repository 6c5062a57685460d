export {
  attachExchange,
  createInterceptor,
  exchangeOf,
  interceptResponse,
  parsedBody,
  type Interceptor,
  type ResponseHandle,
} from './intercept.js'
export { carryBody, type Body, type HeldHead } from './carry.js'
export { clientLeft, outcomeOf } from './ended.js'
export { UsageTransform } from './stream.js'
export { createDecoder, narrowAcceptEncoding, NODE_DECODERS, readableAcceptEncoding } from './decode.js'
export {
  currentExchange,
  observeIncoming,
  decodingObserver,
  type BodyObserver,
  type BodySink,
  runInExchange,
  tapClientRequest,
  tapFetch,
  tapInstalled,
  tapUpstream,
  upstreamInterceptor,
  type InstalledTap,
  type TapOptions,
} from './tap.js'
