export { createInterceptor, interceptResponse, type Interceptor } from './intercept.js'
export { UsageTransform } from './stream.js'
export { createDecoder, NODE_DECODERS } from './decode.js'
