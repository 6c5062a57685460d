/**
 * The conformance matrix (issue 13): one scenario table, run unchanged against every gateway in
 * ./drivers/index.ts. A driver starts the gateway a user of its framework writes (usagewire in the
 * framework's own idiom, in front of a proxy to the mock upstream); every scenario checks both what the
 * client received (bytes, lengths, usage an SDK sees) and the usage record. See ./README.md.
 *
 * One upstream serves the whole file. Each driver gets one gateway per distinct configuration (started on
 * first use, closed after its rows); records are matched to requests by the `x-request-id` each request
 * carries (it becomes the record's id).
 */
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest'
import { DRIVERS } from './drivers/index.js'
import { createRig, type Scenario } from './rig.js'
import { BODIES, ENCODINGS, UPSTREAM_ERRORS } from './scenarios/bodies.js'
import { CLIENTS } from './scenarios/clients.js'
import { CORPUS } from './scenarios/corpus.js'
import { DELIVERY, LIFECYCLE } from './scenarios/streams.js'
import { startUpstream, type Upstream } from './upstream.js'

const SCENARIOS: readonly Scenario[] = [
  ...CORPUS,
  ...BODIES,
  ...UPSTREAM_ERRORS,
  ...ENCODINGS,
  ...DELIVERY,
  ...LIFECYCLE,
  ...CLIENTS,
]

let upstream: Upstream
beforeAll(async () => {
  upstream = await startUpstream()
})
afterAll(async () => {
  await upstream?.close()
})

if (DRIVERS.length === 0) it.todo('no drivers in ./drivers/index.ts')

describe.each(DRIVERS.map((driver) => [driver.name, driver] as const))('%s', (_, driver) => {
  let rig: ReturnType<typeof createRig>
  beforeAll(() => {
    rig = createRig(driver, upstream)
  })
  afterEach(() => rig.openGates())
  afterAll(() => rig.close())
  it.each(SCENARIOS.map((scenario) => [scenario.name, scenario] as const))('%s', (_, scenario) => scenario.run(rig))
})
