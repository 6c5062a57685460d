/**
 * Installs every peer the tests use, before the tests run (CI calls it; the tests call ensurePeer and
 * ensureNpmPeer themselves too): the Python peers into venvs, the npm peers into prefixes, all under
 * PEERS_DIR. Reuses what is in place already. `node --import tsx test/peers/install.ts`
 */
import { ensureNpmPeer, NPM_PEERS } from './npm.js'
import { ensurePeer, PEERS, PEERS_DIR } from './python.js'

const started = Date.now()
const specs = [
  ...Object.values(PEERS).map((spec) => ({ spec, install: () => ensurePeer(spec) })),
  ...Object.values(NPM_PEERS).map((spec) => ({ spec, install: () => ensureNpmPeer(spec.name, spec.version) })),
]
const results = await Promise.allSettled(specs.map(({ install }) => install()))
let failed = 0
for (const [i, result] of results.entries()) {
  const { spec } = specs[i]!
  if (result.status === 'fulfilled') console.log(`peer ${spec.name} ${spec.version}: ready`)
  else {
    failed++
    console.error(`peer ${spec.name} ${spec.version}: ${(result.reason as Error).message}`)
  }
}
console.log(`peers in ${PEERS_DIR}: ${((Date.now() - started) / 1000).toFixed(1)} s`)
if (failed > 0) process.exit(1)
