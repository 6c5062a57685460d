export { carryResponse, usageTransformStream, WEB_CARRIER } from './stream.js'
