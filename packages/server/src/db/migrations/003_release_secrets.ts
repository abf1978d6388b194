import type { Kysely } from 'kysely';

/**
 * Secrets in runtime config: each release's offline-signed commitments, and the values the
 * operator's CLI uploaded, encrypted at rest with the server's secrets key (docs/security.md).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('releases')
    .addColumn('secrets', 'text', (c) => c.notNull().defaultTo('{}'))
    .execute();
  await db.schema
    .createTable('release_secrets')
    .addColumn('app', 'text', (c) => c.notNull())
    .addColumn('version', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('ciphertext', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('release_secrets_pk', ['app', 'version', 'name'])
    .addForeignKeyConstraint(
      'release_secrets_release_fk',
      ['app', 'version'],
      'releases',
      ['app', 'version'],
      (fk) => fk.onDelete('cascade'),
    )
    .execute();
}
