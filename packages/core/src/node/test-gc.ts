import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

setFlagsFromString('--expose-gc')
const collect = runInNewContext('gc') as () => void

/** For tests of what an object lets go of once done: is what `ref` points to collected by full GCs? */
export async function collected(ref: WeakRef<object>): Promise<boolean> {
  for (let i = 0; i < 5 && ref.deref() !== undefined; i++) {
    // A turn of the event loop first: pending callbacks may hold references until they ran.
    await new Promise((resolve) => setImmediate(resolve))
    collect()
  }
  return ref.deref() === undefined
}
