export { prometheusSink, type PrometheusSink, type PrometheusSinkOptions } from './sink.js'
export { metricsHandler } from './handler.js'
export { OTHER } from './labels.js'
