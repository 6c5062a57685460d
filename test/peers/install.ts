/**
 * Installs every Python peer the tests use, before the tests run (CI calls it; the tests call
 * ensurePeer themselves too). Reuses venvs already in place. `node --import tsx test/peers/install.ts`
 */
import { ensurePeer, PEERS, PEERS_DIR } from './python.js'

const started = Date.now()
const results = await Promise.allSettled(Object.values(PEERS).map((spec) => ensurePeer(spec).then(() => spec)))
let failed = 0
for (const [i, result] of results.entries()) {
  const spec = Object.values(PEERS)[i]!
  if (result.status === 'fulfilled') console.log(`peer ${spec.name} ${spec.version}: ready`)
  else {
    failed++
    console.error(`peer ${spec.name} ${spec.version}: ${(result.reason as Error).message}`)
  }
}
console.log(`peers in ${PEERS_DIR}: ${((Date.now() - started) / 1000).toFixed(1)} s`)
if (failed > 0) process.exit(1)
