/**
 * Which mount URLs the admin API and the CLI register. Not `bytes:` ones: a bytes: URL is the
 * shard's data itself, so registering one would let any caller store arbitrary bytes in the
 * state DB. (A program that wants one calls the store directly.)
 */

/** Schemes whose URLs carry the data instead of pointing at it, with the colon. */
const DATA_SCHEMES = new Set(['bytes:'])

/** Why `url` is not registered through the API or the CLI, or undefined when it may be. */
export function unregistrable (url: URL): string | undefined {
  if (!DATA_SCHEMES.has(url.protocol)) return undefined
  return `${url.protocol} URLs carry the shard's data itself and are not registered through the admin API or the CLI: serve the CAR as a file or over HTTP`
}
