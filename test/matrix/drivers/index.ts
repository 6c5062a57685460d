import type { Driver } from '../driver.js'
import { drivers as express } from './express.js'
import { drivers as fastify } from './fastify.js'
import { drivers as hpm } from './http-proxy-middleware.js'
import { drivers as koa } from './koa.js'

/** Every gateway the matrix runs against: each adapter, each supported major that installs on Node 20. */
export const DRIVERS: readonly Driver[] = [...express, ...koa, ...fastify, ...hpm]
