export { startMockUpstream, type MockExchange, type MockUpstream, type MockUpstreamOptions } from './server.js'
export { scenarios, findScenario, type Scenario } from './scenarios.js'
export type { MockDialect, RequestContext, TrueUsage } from './types.js'
