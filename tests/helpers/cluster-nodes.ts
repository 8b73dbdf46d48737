// `dagstore serve --db` processes for the cluster tests: each node its own repo dir, name and a
// port chosen before it starts (its advertised URL must be known to the others).
import { freePort } from './net.js'
import { spawnServe, type Running } from './cli.js'

export interface ServeNode { name: string, dir: string, port: number, url: string, serve: Running | undefined }

export async function makeNode (name: string, dir: string): Promise<ServeNode> {
  return { name, dir, port: await freePort(), url: '', serve: undefined }
}

/** Starts (or restarts) `node` on the database `db`; `files` is the directory its local CARs may be registered from. */
export async function startNode (node: ServeNode, db: string, files: string): Promise<void> {
  const started = await spawnServe(node.dir, [
    '--no-auth', '--allow-root', files, '--listen', `127.0.0.1:${node.port}`,
    '--db', db, '--node', node.name, '--advertise', `http://127.0.0.1:${node.port}`
  ])
  node.serve = started.serve
  node.url = started.url
}

/** Registers `url` as shard `key` on `node` through its admin API. */
export async function registerOn (node: ServeNode, key: string, url: string): Promise<void> {
  const res = await fetch(`${node.url}/shards`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key, url })
  })
  if (res.status !== 201) throw new Error(`register ${key} on ${node.name}: ${res.status} ${await res.text()}`)
}
