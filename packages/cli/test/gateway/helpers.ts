/** Shared set-up for the gateway tests: a gateway config file, the database, a silent logger. */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { mksquashfs, writeFixtureTree } from './fixture-importer.js';

const run = promisify(execFile);
export const REDIS_URL = process.env.FLOTILLA_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const silent = pino({ level: 'silent' });

export async function tempRoot(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function writeGatewayConfig(root: string, body: string): Promise<string> {
  const file = join(root, 'gateway.yaml');
  await writeFile(file, body);
  return file;
}

/** The squashfs the fixture importer makes for `repository:tag`, built here independently. */
export async function expectedSha256(root: string, repository: string, tag: string): Promise<string> {
  const dir = join(root, 'expected', `${repository.replace(/\//g, '_')}-${tag}`);
  await writeFixtureTree(join(dir, 'tree'), repository, tag);
  await mksquashfs(join(dir, 'tree'), join(dir, 'image.sqfs'));
  return createHash('sha256')
    .update(await readFile(join(dir, 'image.sqfs')))
    .digest('hex');
}

export async function sha256Of(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** Deletes every Redis key under a test's BullMQ prefix. */
export async function dropRedisPrefix(prefix: string): Promise<void> {
  const { stdout } = await run('redis-cli', ['-u', REDIS_URL, '--scan', '--pattern', `${prefix}:*`]);
  const keys = stdout.split('\n').filter(Boolean);
  for (let i = 0; i < keys.length; i += 200)
    await run('redis-cli', ['-u', REDIS_URL, 'del', ...keys.slice(i, i + 200)]);
}

export async function until<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
  limitMs = 120_000,
): Promise<T> {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A database URL for a test: a SQLite file under `root`, or a fresh PostgreSQL database. */
export async function testDatabase(
  dialect: 'sqlite' | 'postgres',
  root: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  if (dialect === 'sqlite')
    return { url: `sqlite:${join(root, 'flotilla.db')}`, drop: () => Promise.resolve() };
  const { default: pg } = await import('pg');
  const server = process.env.FLOTILLA_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `flt_gw_${randomBytes(6).toString('hex')}`;
  const onServer = async (statement: string): Promise<void> => {
    const client = new pg.Client({ connectionString: server });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await onServer(`create database ${name}`);
  const url = new URL(server);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => onServer(`drop database if exists ${name} with (force)`) };
}
