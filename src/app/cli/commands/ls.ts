/**
 * `dagstore ls`: shards in key order, as a table or JSON. Without --limit every page is
 * fetched and written as it comes (one listing, never all shards in memory at once); with
 * --limit one page, and the cursor of the next one (on stderr, or as `next` in --json).
 * Through a clustered server, or with --db straight from the database, every node's shards,
 * each with its node (docs/CLUSTER.md); --node keeps one node's.
 */
import { once } from 'node:events'
import { Option, type Command } from 'commander'
import { SHARD_STATES, type ShardState } from '../../../base/types.js'
import type { ShardListJson } from '../../wire.js'
import type { CliContext } from '../context.js'
import { ShardJsonStream, ShardTableStream, json } from '../format.js'
import { intArg } from '../options.js'
import { UsageError } from '../errors.js'
import type { PageQuery } from '../backend.js'
import { dbOption, openDatabaseListing } from '../database.js'
import type { EnvOptions } from '../options.js'

interface LsOpts {
  json?: boolean
  limit?: number
  cursor?: string
  state?: ShardState
  prefix?: string
  node?: string
  db?: string
}

/** What a walk over every page asks for at a time: GET /shards's largest page. */
const PAGE = 1000

async function written (stream: NodeJS.WritableStream, text: string): Promise<void> {
  if (text !== '' && !stream.write(text)) await once(stream, 'drain')
}

/** A listing's pages, from whichever source answers them. */
interface Pages { page: (query: PageQuery) => Promise<ShardListJson> }

export function addLs (program: Command, ctx: CliContext, env: EnvOptions): void {
  program.command('ls')
    .description('list shards in key order: key, state, refs, size, error')
    .option('--limit <n>', `one page of at most n shards (1..${PAGE}), then the cursor of the next`, intArg('--limit', 1))
    .option('--cursor <cursor>', 'start where a previous page ended (its "next")')
    .addOption(new Option('--state <state>', 'only shards in this state').choices(SHARD_STATES))
    .option('--prefix <prefix>', 'only keys that start with this')
    .option('--node <name>', 'in a cluster: only the shards this node owns')
    .addOption(dbOption(env, 'list the cluster\'s shards from this database (postgres://…), not through the repo'))
    .option('--json', 'JSON output')
    .action(async (opts: LsOpts, cmd: Command) => {
      if (opts.limit !== undefined && opts.limit > PAGE) throw new UsageError(`--limit must be at most ${PAGE}`)
      if (opts.node === '') throw new UsageError('--node must name a node')
      const filter = { state: opts.state, prefix: opts.prefix, node: opts.node }
      const list = async (backend: Pages): Promise<void> => {
        if (opts.limit !== undefined) {
          const page = await backend.page({ limit: opts.limit, cursor: opts.cursor, ...filter })
          if (opts.json === true) {
            ctx.out(json(page satisfies ShardListJson))
            return
          }
          ctx.out(page.shards.length === 0 ? 'no shards\n' : new ShardTableStream().page(page.shards))
          if (page.next !== undefined) ctx.err(`next page: --cursor ${page.next}\n`)
          return
        }
        const table = new ShardTableStream()
        const jsonOut = new ShardJsonStream()
        let cursor = opts.cursor
        let listed = 0
        do {
          const page = await backend.page({ limit: PAGE, cursor, ...filter })
          // A pipe read slowly holds the walk back instead of queueing pages in memory.
          await written(ctx.io.stdout, opts.json === true ? jsonOut.page(page.shards) : page.shards.length === 0 ? '' : table.page(page.shards))
          listed += page.shards.length
          cursor = page.next
        } while (cursor !== undefined)
        if (opts.json === true) ctx.out(jsonOut.end())
        else if (listed === 0) ctx.out('no shards\n')
      }
      if (opts.db === undefined || opts.db === '') {
        await ctx.withBackend(cmd, list)
        return
      }
      const listing = await openDatabaseListing(opts.db)
      try {
        await list(listing)
      } finally {
        await listing.close()
      }
    })
}
