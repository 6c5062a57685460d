export { inspect, type InspectOptions, type InspectResult } from './inspect.js'
