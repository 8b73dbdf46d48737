// What the gateway tests share: a store with two shards (sample-v1.car and a generated CAR),
// a gateway over it with its own metrics registry, and a loopback server to reach it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Counter, Registry } from 'prom-client'
import { FileMount } from '../../src/storage/mount/file.js'
import { BLOCK_REQUESTS_METRIC, createGateway, type Gateway } from '../../src/app/server/gateway.js'
import type { DAGStore } from '../../src/engine/store.js'
import { fixture, tempDir } from './fixtures.js'
import { encodeCar, type Block } from './car-gen.js'
import { openStore } from './store.js'

export interface GatewayFixture {
  dir: string
  store: DAGStore
  registry: Registry
  gateway: Gateway
  /** Removes the store, the gateway and the folder (servers are closed by their owners). */
  close: () => Promise<void>
}

/** Shards "sample" (sample-v1.car) and "generated" (`generated` as a CAR), a gateway over them. */
export async function gatewayFixture (generated: Block[]): Promise<GatewayFixture> {
  const { dir, cleanup } = await tempDir()
  const { store } = await openStore(dir)
  await store.register('sample', new FileMount(fixture('sample-v1.car')))
  const gen = join(dir, 'generated.car')
  await writeFile(gen, encodeCar(generated).bytes)
  await store.register('generated', new FileMount(gen))
  const registry = new Registry()
  const gateway = createGateway(store, { registry })
  return {
    dir,
    store,
    registry,
    gateway,
    close: async () => {
      await gateway.close()
      await store.close()
      await cleanup()
    }
  }
}

/** A loopback server; `close()` drops kept-alive sockets so it never waits on them. */
export async function listen (handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ base: string, close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer(handler)
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    base: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}

/** Hands a request to the gateway; a path it declines gets 404 `fallback`. */
export function serveGateway (gateway: Gateway, req: IncomingMessage, res: ServerResponse): void {
  gateway.handle(req, res).then((handled) => {
    if (!handled) {
      res.writeHead(404, { 'content-type': 'text/plain' })
      res.end('fallback')
    }
  }, (err: unknown) => { res.destroy(err as Error) })
}

/** dagstore_block_requests_total by status. */
export async function blockRequests (registry: Registry): Promise<Record<string, number>> {
  const metric = registry.getSingleMetric(BLOCK_REQUESTS_METRIC) as Counter<'status'>
  const out: Record<string, number> = {}
  for (const v of (await metric.get()).values) out[String(v.labels.status)] = v.value
  return out
}
