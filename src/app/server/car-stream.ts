/**
 * A CARv1 written to an HTTP response as its blocks come, by @ipld/car's streaming CarWriter,
 * with back pressure end to end: the writer's `put` resolves only once its bytes were taken,
 * and they are taken only while the response accepts more (`res.write` true, else 'drain'). So
 * the walk producing the blocks reads one block ahead of the socket at most.
 *
 * When the client goes away (`signal`), the walk is stopped before its next block and what the
 * writer still holds is drained into nothing, so neither side waits for ever.
 */
import type { ServerResponse } from 'node:http'
import { CarWriter } from '@ipld/car/writer'
import type { CID } from 'multiformats/cid'
import type { Block } from '../../read/dag-decode.js'
import { drained } from './http-util.js'

/**
 * Writes the CAR (header with `roots`, then `blocks`) to `res`, whose head is already set. Rejects
 * with the walk's error when it fails (the caller cuts the response: the CAR is incomplete);
 * resolves when the CAR was written or the client went away.
 */
export async function streamCar (res: ServerResponse, roots: CID[], blocks: AsyncIterable<Block>, signal: AbortSignal): Promise<void> {
  const { writer, out } = CarWriter.create(roots)
  const produce = (async () => {
    try {
      for await (const block of blocks) {
        if (signal.aborted) break
        await writer.put(block)
      }
    } finally {
      await writer.close()
    }
  })()
  const consume = (async () => {
    for await (const chunk of out) {
      // Gone: keep taking (and dropping) what the writer holds, or its put/close would wait for ever.
      if (signal.aborted || res.destroyed) continue
      if (!res.write(chunk)) await drained(res)
    }
  })()
  const [made, sent] = await Promise.allSettled([produce, consume])
  if (made.status === 'rejected') throw made.reason
  if (sent.status === 'rejected') throw sent.reason
  if (!signal.aborted && !res.destroyed) res.end()
}
