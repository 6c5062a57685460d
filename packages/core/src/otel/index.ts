export { otelSink, usageAttributes, type OtelSink, type OtelSinkOptions } from './sink.js'
export { errorTypeOf, providerOf } from './conventions.js'
