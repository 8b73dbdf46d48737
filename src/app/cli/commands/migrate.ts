/** `dagstore migrate`: creates or upgrades the schema of a cluster's database. Idempotent. */
import type { Command } from 'commander'
import type { CliContext } from '../context.js'
import { UsageError } from '../errors.js'
import { dbOption } from '../database.js'
import { json } from '../format.js'
import type { EnvOptions } from '../options.js'

export function addMigrate (program: Command, ctx: CliContext, env: EnvOptions): void {
  program.command('migrate')
    .description('create or upgrade the dagstore schema of a PostgreSQL-protocol database (safe to run again, and from several nodes at once)')
    .addOption(dbOption(env, 'the database (postgres://…)'))
    .option('--json', 'JSON output')
    .action(async (opts: { db?: string, json?: boolean }) => {
      if (opts.db === undefined || opts.db === '') throw new UsageError('migrate needs --db <url> (or DAGSTORE_DB)')
      const { migrateDatabase } = await import('../../../storage/postgres/backend.js')
      const result = await migrateDatabase({ url: opts.db })
      if (opts.json === true) ctx.out(json(result))
      else if (result.applied.length === 0) ctx.out(`schema at version ${result.version}: up to date\n`)
      else ctx.out(`schema at version ${result.version}: applied ${result.applied.join(', ')}\n`)
    })
}
