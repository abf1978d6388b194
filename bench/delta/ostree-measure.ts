/**
 * OSTree's side (Debian's `ostree`): both trees committed to an archive-mode repository served over
 * HTTP on 127.0.0.1 by a byte-counting static server. A client repository (bare-user) pulls v1, then
 * v2 (bytes and time of that pull), then checks v2 out; `reps` such clients run and the one with the
 * median pull + checkout time is reported. A fresh client pulls v2 in full. Static
 * delta: generated `--inline` into one file, fetched over the same HTTP server and applied with
 * `static-delta apply-offline` on a second client that holds v1 (pulling static deltas is broken in
 * Debian's ostree 2022.7), then checked out.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { medianBy, run, timed } from './exec.js';
import { serveDirectory } from './static-server.js';

export interface OstreeFigures {
  /** Bytes of a pull of v2 into an empty repository. */
  fullBytes: number;
  updateBytes: number;
  updateRequests: number;
  pullMs: number;
  checkoutMs: number;
  /** Size of the inline static delta file, as fetched. */
  deltaBytes: number;
  deltaFetchMs: number;
  deltaApplyMs: number;
  deltaCheckoutMs: number;
}

const ostree = (args: string[]) => run('ostree', args);

async function commit(repo: string, dir: string, subject: string): Promise<string> {
  const out = await ostree([
    `--repo=${repo}`,
    'commit',
    '--branch=bench',
    `--subject=${subject}`,
    '--no-xattrs',
    dir,
  ]);
  return out.stdout.trim();
}

async function clientRepo(path: string, url: string): Promise<string> {
  await ostree([`--repo=${path}`, 'init', '--mode=bare-user']);
  await ostree([`--repo=${path}`, 'remote', 'add', '--no-gpg-verify', 'origin', `${url}/repo`]);
  return path;
}

export async function measureOstree(v1Dir: string, v2Dir: string, reps: number): Promise<OstreeFigures> {
  const work = await mkdtemp(join(tmpdir(), 'flt-delta-ostree-'));
  const server = await serveDirectory(join(work, 'served'));
  try {
    const repo = join(work, 'served', 'repo');
    await mkdir(join(work, 'served', 'deltas'), { recursive: true });
    await ostree([`--repo=${repo}`, 'init', '--mode=archive']);
    const c1 = await commit(repo, v1Dir, 'v1');
    const c2 = await commit(repo, v2Dir, 'v2');

    const updates = [];
    for (let i = 0; i < reps; i++) {
      const client = await clientRepo(join(work, `client-${i}`), server.url);
      await ostree([`--repo=${client}`, 'pull', 'origin', c1]);
      server.reset();
      const pull = await timed(() => ostree([`--repo=${client}`, 'pull', 'origin', c2]));
      const counters = server.counters();
      const checkout = await timed(() =>
        ostree([`--repo=${client}`, 'checkout', '-U', '--fsync=true', c2, join(work, `co-pull-${i}`)]),
      );
      updates.push({ pullMs: pull.ms, checkoutMs: checkout.ms, ...counters });
    }
    const update = medianBy(updates, (u) => u.pullMs + u.checkoutMs);
    console.error(
      `  ostree updates: ${updates.map((u) => Math.round(u.pullMs + u.checkoutMs)).join(', ')} ms`,
    );
    const fresh = await clientRepo(join(work, 'fresh'), server.url);
    server.reset();
    await ostree([`--repo=${fresh}`, 'pull', 'origin', c2]);
    const fullBytes = server.counters().bytes;

    const deltaFile = join(work, 'served', 'deltas', 'v1-v2.delta');
    await ostree([
      `--repo=${repo}`,
      'static-delta',
      'generate',
      `--from=${c1}`,
      `--to=${c2}`,
      '--inline',
      `--filename=${deltaFile}`,
    ]);
    const offline = await clientRepo(join(work, 'offline'), server.url);
    await ostree([`--repo=${offline}`, 'pull', 'origin', c1]);
    server.reset();
    const local = join(work, 'fetched.delta');
    const fetched = await timed(async () => {
      const r = await fetch(`${server.url}/deltas/v1-v2.delta`);
      if (!r.ok) throw new Error(`delta download: ${r.status}`);
      await writeFile(local, Buffer.from(await r.arrayBuffer()));
    });
    const deltaBytes = server.counters().bytes;
    const apply = await timed(() => ostree([`--repo=${offline}`, 'static-delta', 'apply-offline', local]));
    const deltaCheckout = await timed(() =>
      ostree([`--repo=${offline}`, 'checkout', '-U', '--fsync=true', c2, join(work, 'co-delta')]),
    );
    return {
      fullBytes,
      updateBytes: update.bytes,
      updateRequests: update.requests,
      pullMs: update.pullMs,
      checkoutMs: update.checkoutMs,
      deltaBytes,
      deltaFetchMs: fetched.ms,
      deltaApplyMs: apply.ms,
      deltaCheckoutMs: deltaCheckout.ms,
    };
  } finally {
    await server.close();
    await rm(work, { recursive: true, force: true });
  }
}
