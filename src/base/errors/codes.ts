/**
 * Every error code of the library, the HTTP server and the CLI, with the HTTP status a
 * response failing with it carries and what it means. Codes are a public contract (scripts
 * and clients match on them): a code is never renamed or reused, only added. README.md's
 * error table mirrors this one (tests/error-registry.test.ts keeps them in step).
 *
 * `status` is what the admin API or the gateway answers. Codes that reach a client only as the
 * `cause` of ERR_SHARD_INITIALIZATION_FAILED (a bad CAR, a failed download) carry that answer's
 * 422. null: no HTTP answer fails with the code (a CLI-side failure, or an outcome the server
 * reports in a body or an event stream); should one ever reach a response, it is a 500.
 */
import { codeOf } from './inspect.js'

export interface ErrorCodeInfo<C extends string = string> {
  readonly code: C
  readonly status: number | null
  readonly meaning: string
}

function entry<C extends string> (code: C, status: number | null, meaning: string): ErrorCodeInfo<C> {
  return Object.freeze({ code, status, meaning })
}

export const ERROR_CODES = Object.freeze([
  // The store (classes in base/errors.ts).
  entry('ERR_SHARD_UNKNOWN', 404, 'no shard is registered under this key'),
  entry('ERR_SHARD_EXISTS', 409, 'a shard is already registered under this key'),
  entry('ERR_SHARD_INITIALIZATION_FAILED', 422, 'fetching or indexing the shard failed (`cause` says why); the shard stays registered, errored'),
  entry('ERR_SHARD_IN_USE', 409, 'the shard has live references, so it cannot be destroyed'),
  entry('ERR_SHARD_ERRORED', 409, 'the shard is errored: recover or destroy it'),
  entry('ERR_SHARD_NOT_ERRORED', 409, 'only an errored shard can be recovered'),
  entry('ERR_SHARD_DRAINING', 409, 'a destroy with drain is waiting for the shard\'s accessors to close: it takes no new acquire and no recover'),
  entry('ERR_STORE_NOT_STARTED', 503, 'the store has not finished start()'),
  entry('ERR_STORE_CLOSED', 503, 'the store is closing or closed'),
  entry('ERR_NOT_FOUND', 404, 'no shard holds the block'),
  entry('ERR_INVALID_SHARD_KEY', 400, 'a shard key must be 1..1024 UTF-8 bytes, without NUL'),
  entry('ERR_UNKNOWN_MOUNT_SCHEME', 400, 'no mount is registered for the URL scheme'),
  entry('ERR_INVALID_MOUNT', 400, 'a mount URL or mount value the mount registry cannot accept'),
  entry('ERR_SUBSCRIPTION_LAGGED', null, 'an event subscriber fell further behind than the event buffer holds (GET /events sends `event: lagged` and ends)'),
  entry('ERR_INVALID_CAR', 422, 'the shard is not a valid CAR (the message names the byte offset), or with hash verification on a block\'s data does not hash to its CID (the message names the CID too; verify reports that as ERR_HASH_MISMATCH)'),
  entry('ERR_HASH_MISMATCH', 502, 'a block does not hash to its CID: read in place from a remote origin, which served other bytes than the shard was indexed from, or found by verify in the shard\'s data (the message names the CID and byte offset)'),
  entry('ERR_UNSUPPORTED_HASH', 422, 'hash verification met a block it cannot check: no hasher for its multihash function, or a digest truncated below 20 bytes (the message names the CID and byte offset)'),
  entry('ERR_INDEX_NOT_FOUND', 404, 'the index repo has no index for the shard'),
  entry('ERR_INDEX_MISMATCH', null, 'verify: the shard\'s stored full index disagrees with its data (an entry missing, extra, or at another offset); `--repair` rewrites it'),
  entry('ERR_TOP_LEVEL_MISSING', null, 'verify: a block of the shard is not mapped to it in the top-level index (find and the gateway miss it there); `--repair` rewrites the entries'),
  entry('ERR_TRANSIENT', 422, 'the local copy (transient) of the shard could not be produced'),
  entry('ERR_TRANSIENTS_FULL', 422, 'automated GC found no room under gc.maxTransientsBytes: all that is left is in use, downloading or within its grace period'),
  entry('ABORT_ERR', null, 'the operation\'s AbortSignal fired before it finished'),
  // The PostgreSQL backend (storage/postgres/).
  entry('ERR_SCHEMA_VERSION', 503, 'the database holds a dagstore schema newer than this dagstore knows: upgrade the dagstore before pointing it at the database'),
  // The cluster (nodes over one database: storage/postgres/, engine/cluster/, the gateway's proxy).
  entry('ERR_NODE_ALIVE', 409, 'adopt: the node whose shards were to be adopted holds a current lease (it is alive): stop it, or wait until its lease runs out'),
  entry('ERR_NODE_UNKNOWN', 404, 'adopt: no node of that name is known to the database'),
  entry('ERR_NOT_CLUSTERED', 400, 'a cluster command (nodes, adopt, the node filter of a listing) on a store without a shared database (serve --db)'),
  entry('ERR_SHARD_ELSEWHERE', 503, 'the block is held only by shards another node owns and this node cannot read itself (a local file there, or an origin that failed a read in place): the gateway proxies the request to that node, or fetches the block from it mid-DAG'),
  entry('ERR_OWNER_UNAVAILABLE', 503, 'the block is held only by shards of a node that is down (stale heartbeat), advertises no URL, or does not answer within the proxy timeouts (the proxied request or the fetch of one block of a DAG; with Retry-After)'),
  // Reading blocks (read/, engine/accessor/).
  entry('ERR_BLOCKSTORE_CLOSED', 503, 'a call on an all-shards blockstore after its close()'),
  entry('ERR_READ_ONLY', 405, 'a write on the read-only interface-blockstore adapter'),
  entry('ERR_ACCESSOR_CLOSED', 500, 'a read through a shard accessor after its close()'),
  entry('ERR_INVALID_ARGUMENT', 400, 'an option of a store call out of its range (listShards: limit, state, after, prefix)'),
  // HttpMount (storage/mount/http.ts).
  entry('ERR_HTTP_STATUS', 422, 'the mount\'s server answered a status it cannot use (`.status`), after retries for 5xx and 429'),
  entry('ERR_HTTP_LENGTH_MISMATCH', 422, 'an HTTP body\'s length disagrees with its Content-Length or with the size HEAD reported'),
  entry('ERR_HTTP_TIMEOUT', 422, 'no response, or no body bytes, within the mount\'s timeoutMs; a body slower than its minBytesPerSecond; or a download past its deadlineMs'),
  entry('ERR_HTTP_RANGE', 422, 'a 206 whose Content-Range is not the range asked for, or an unexpected 206; in place: an origin that stopped honouring Range (200 to a ranged read)'),
  entry('ERR_HTTP_NETWORK', 422, 'the HTTP connection failed: refused, reset, protocol error (`cause` has the system error)'),
  entry('ERR_HTTP_CHANGED', 422, 'the resource\'s ETag or Last-Modified moved during the download, or a ranged read in place got another validator or a Content-Range other than the one asked for'),
  // Remote shards read in place (storage/remote/).
  entry('ERR_READER_CLOSED', 500, 'a read through an in-place mount reader after its close()'),
  entry('ERR_RANGE_NOT_SUPPORTED', 422,
    'a shard registered with copy \'never\' whose origin cannot be read in place: it ignores Range, or gives no size, ETag or Last-Modified (the message says which)'),
  entry('ERR_REMOTE_READ_TOO_LARGE', 500,
    'a read in place larger than the section cache\'s cacheBytes: its in-flight buffer cannot be held within the budget'),
  // The HTTP server (app/server/).
  entry('ERR_INVALID_REQUEST', 400, 'a malformed request: body, field, percent-encoding, dag-scope or entity-bytes'),
  entry('ERR_INVALID_CURSOR', 400, 'a listing cursor (GET /shards ?cursor, ls --cursor) that is not one a listing handed out: base64url of a shard key'),
  entry('ERR_INVALID_CID', 400, 'not a CID (a URL segment, or a CLI argument)'),
  entry('ERR_INVALID_PATH', 400, 'a gateway path after the CID that cannot be decoded (bad percent-encoding)'),
  entry('ERR_FORMAT_REQUIRED', 400, 'a gateway request with neither Accept nor ?format'),
  entry('ERR_UNAUTHORIZED', 401, 'an admin request without the right bearer token (CLI: no token to send)'),
  entry('ERR_MOUNT_SCHEME_NOT_ALLOWED', 400, 'a mount URL of a scheme the admin API and the CLI do not register (bytes:, which carries the data itself)'),
  entry('ERR_FORBIDDEN_PATH', 403, 'a file: URL outside every --allow-root folder'),
  entry('ERR_FORBIDDEN_HOST', 403, 'an admin request without a token whose Host is not a loopback name'),
  entry('ERR_FORBIDDEN_ORIGIN', 403, 'a cross-origin admin request without a token'),
  entry('ERR_NOT_FOUND_ROUTE', 404, 'no route for this path'),
  entry('ERR_PATH_NOT_FOUND', 404, 'a gateway path after the CID names no directory entry, map key or list index in the DAG'),
  entry('ERR_METHOD_NOT_ALLOWED', 405, 'the route takes other methods (`Allow` lists them)'),
  entry('ERR_NOT_ACCEPTABLE', 406, 'no format the gateway serves matches Accept, ?format or the CAR parameters'),
  entry('ERR_NOT_CACHED', 412, 'Cache-Control: only-if-cached, and no shard holds the block'),
  entry('ERR_RANGE_NOT_SATISFIABLE', 416, 'GET /car/{key} with a Range that lies outside the shard (`Content-Range: bytes */size` gives its size)'),
  entry('ERR_PAYLOAD_TOO_LARGE', 413, 'a request body above limits.maxBodyBytes'),
  entry('ERR_URL_TOO_LONG', 414, 'a request target above limits.maxUrlLength'),
  entry('ERR_UNSUPPORTED_MEDIA_TYPE', 415, 'a request body that is not application/json'),
  entry('ERR_INTERNAL', 500, 'an unexpected failure (what an error without a code is answered as)'),
  entry('ERR_BLOCK_UNAVAILABLE', 500, 'every shard holding the block failed (errored shard, vanished file)'),
  entry('ERR_BLOCK_UNDECODABLE', 500, 'a stored block the gateway must read (a path or a DAG walk) does not decode under its CID\'s codec'),
  entry('ERR_NOT_IMPLEMENTED', 501, 'a gateway path or DAG walk through a codec the gateway does not decode, or a HAMT deeper than its hash'),
  entry('ERR_DUPS_LIMIT', null, 'a dups=y CAR stream repeated more blocks than the gateway allows: the stream is cut (the client sees an incomplete CAR)'),
  entry('ERR_UNAVAILABLE', 503, 'the gateway or its store is closed (with Retry-After)'),
  entry('ERR_SERVER_CLOSING', 503, 'the server is shutting down'),
  // The CLI (app/cli/): the status is the one a server would answer.
  entry('ERR_USAGE', 400, 'a bad command line (exit code 2)'),
  entry('ERR_FAILED', 500, 'a failure whose error has no code'),
  entry('ERR_FILE_NOT_FOUND', 404, 'a path given to register or import does not exist'),
  entry('ERR_NOT_A_FILE', 400, 'register was given something that is not a file'),
  entry('ERR_NOT_A_DIRECTORY', 400, 'import was given something that is not a folder'),
  entry('ERR_REPO_SERVED', 409, 'another serve holds the repo'),
  entry('ERR_REPO_LOCKED', 409, 'another process has the repo open and no server answers for it'),
  entry('ERR_SERVER_UNREACHABLE', 502, 'the server the repo\'s serve.json names did not answer'),
  entry('ERR_ADDRESS_IN_USE', null, 'serve: the --listen address is taken')
] as const)

export type ErrorCode = (typeof ERROR_CODES)[number]['code']

/** Every registered code by name: `CODE.ERR_SHARD_UNKNOWN` is 'ERR_SHARD_UNKNOWN', and a typo does not compile. */
export const CODE = Object.freeze(Object.fromEntries(ERROR_CODES.map((e) => [e.code, e.code]))) as { readonly [C in ErrorCode]: C }

/**
 * The one family of codes made up at run time: the CLI's name for an admin API answer that
 * carried no JSON error body (a proxy's page, say), `ERR_HTTP_` + the status.
 */
export const HTTP_STATUS_CODES = Object.freeze({
  prefix: 'ERR_HTTP_',
  pattern: /^ERR_HTTP_([1-5]\d\d)$/,
  meaning: 'the admin API answered this status without a JSON error body'
})

const BY_CODE = new Map<string, ErrorCodeInfo>(ERROR_CODES.map((e) => [e.code, e]))

/** The registry's row for `code` (a made-up ERR_HTTP_<status> gets its status), or undefined for a code that is not ours. */
export function errorCodeInfo (code: string): ErrorCodeInfo | undefined {
  const known = BY_CODE.get(code)
  if (known !== undefined) return known
  const m = HTTP_STATUS_CODES.pattern.exec(code)
  return m === null ? undefined : { code, status: Number(m[1]), meaning: HTTP_STATUS_CODES.meaning }
}

/** The status an HTTP response failing with `err` carries: its code's, and 500 for anything the registry has no status for. */
export function httpStatusOf (err: unknown): number {
  const code = codeOf(err)
  return (code === undefined ? undefined : errorCodeInfo(code)?.status) ?? 500
}
