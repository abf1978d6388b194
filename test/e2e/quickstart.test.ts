/**
 * The README's quick start, run literally: its shell block is read from README.md at test time and
 * each line runs, in order, in one bash (so its alias, `cd` and background job carry over), against
 * what `npm start` runs (`flotilla up`) on a fresh HOME. The only change made to the text is the
 * port (a free one instead of 7070), so that nothing of the developer's is touched. Each line's
 * result is checked; a README line this test has no check for fails it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Cluster, cliBin, freePort, repoRoot, sleep, waitFor } from './harness.js';
import type { Proc } from './harness.js';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** One bash reading commands from a pipe; each `run` waits for its own end marker. */
class Shell {
  private stdout = '';
  private stderr = '';
  private readonly child: ChildProcessWithoutNullStreams;
  private n = 0;

  constructor(cwd: string, env: Record<string, string>) {
    this.child = spawn('bash', ['--noprofile', '--norc'], { cwd, env, stdio: 'pipe' });
    this.child.stdout.on('data', (b: Buffer) => (this.stdout += b.toString()));
    this.child.stderr.on('data', (b: Buffer) => (this.stderr += b.toString()));
  }

  async run(line: string): Promise<Result> {
    const marker = `__quickstart_done_${++this.n}__`;
    const outStart = this.stdout.length;
    const errStart = this.stderr.length;
    this.child.stdin.write(`${line}\necho "${marker} $?"; echo "${marker}" >&2\n`);
    const done = new RegExp(`${marker} (\\d+)\\n`);
    const m = await waitFor(
      `"${line}" to finish`,
      () =>
        Promise.resolve(
          done.exec(this.stdout.slice(outStart)) && this.stderr.slice(errStart).includes(marker)
            ? done.exec(this.stdout.slice(outStart))
            : null,
        ),
      180_000,
    );
    const stdout = this.stdout.slice(outStart);
    return {
      code: Number(m[1]),
      stdout: stdout.slice(0, stdout.indexOf(marker)),
      stderr: this.stderr.slice(errStart, this.stderr.indexOf(marker, errStart)),
    };
  }

  async close(): Promise<void> {
    this.child.stdin.end('kill $(jobs -p) 2>/dev/null; exit 0\n');
    await new Promise((r) => this.child.once('close', r));
  }
}

/** The fenced shell block of README.md that starts with the `flotilla` alias. */
function quickStartBlock(): string[] {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  const first = blocks[0] ?? '';
  assert.match(first, /^npm start\b/m, 'the first block starts the quick start with npm start');
  const block = blocks.find((b) => b.startsWith('alias flotilla='));
  assert.ok(block, 'README.md has the quick-start block');
  return block.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
}

type Check = (r: Result, sh: Shell) => Promise<string | null> | string | null;

const checks: [RegExp, Check, { retry?: boolean }?][] = [
  [/^alias flotilla=/, (r) => (r.code === 0 ? null : 'alias failed')],
  [
    /^cd "\$\(mktemp -d\)"/,
    async (r, sh) => {
      const pwd = (await sh.run('pwd')).stdout.trim();
      return r.code === 0 && !pwd.startsWith(repoRoot)
        ? null
        : `cd failed or still in the repository: ${pwd}`;
    },
  ],
  [
    /^flotilla devices ls +#/,
    (r) =>
      r.code === 0 && /accepted/.test(r.stdout) && /local/.test(r.stdout) ? null : 'no accepted local agent',
    { retry: true },
  ],
  [
    /^flotilla regkeys create .*> key\.txt$/,
    async (r, sh) => {
      const key = (await sh.run('cat key.txt')).stdout.trim();
      return r.code === 0 && /^flt_rk_\S+$/.test(key) ? null : `key.txt holds ${JSON.stringify(key)}`;
    },
  ],
  [/^flotilla agent .*&$/, (r) => (r.code === 0 ? null : 'could not start the second agent')],
  [
    /^flotilla devices ls --filter 'tags==lab/,
    (r) =>
      r.code === 0 && /\blab\b/.test(r.stdout) && /accepted|pending/.test(r.stdout)
        ? null
        : 'the second agent is not listed',
    { retry: true },
  ],
  [
    /^flotilla audit ls$/,
    (r) => (r.code === 0 && /regkey\.create/.test(r.stdout) ? null : 'no regkey.create entry'),
  ],
  [
    /^\(umask 077; head -c 24 \/dev\/urandom \| base64 > passphrase\.txt\)/,
    async (r, sh) => {
      const mode = (await sh.run('stat -c %a passphrase.txt')).stdout.trim();
      return r.code === 0 && mode === '600' ? null : `passphrase.txt has mode ${mode}`;
    },
  ],
  [/^flotilla keys init /, (r) => (r.code === 0 ? null : 'keys init failed')],
  [/^mkdir -p site /, (r) => (r.code === 0 ? null : 'no site')],
  [
    /^flotilla release push \.\/site /,
    (r) =>
      r.code === 0 && /pushed web@1\.0\.0 and signed targets v\d+/.test(r.stdout) ? null : 'push failed',
  ],
  [/^flotilla deploy web@1\.0\.0 /, (r) => (r.code === 0 ? null : 'deploy failed')],
  [
    /^flotilla deploy status web@1\.0\.0 --watch/,
    (r) => (r.code === 0 && /committed/.test(r.stdout) ? null : 'the release did not reach committed'),
  ],
  [
    /^flotilla devices apps \$\(/,
    (r) =>
      r.code === 0 && /web\s+1\.0\.0\s+1\.0\.0\s+committed/.test(r.stdout)
        ? null
        : 'web@1.0.0 is not running',
  ],
  [/^kill %1/, (r) => (r.code === 0 ? null : 'the second agent was not running')],
];

const cluster = new Cluster();
let up: Proc;
let shell: Shell;
let port: number;
let home: string;

before(async () => {
  const root = await cluster.tempDir('flt-quickstart-');
  home = join(root, 'home');
  await mkdir(join(root, 'tmp'), { recursive: true });
  port = await freePort();
  const env = {
    HOME: home,
    TMPDIR: join(root, 'tmp'),
    // Nothing of the caller's configuration leaks in.
    FLOTILLA_CONFIG_DIR: '',
    FLOTILLA_SERVER: '',
    FLOTILLA_TOKEN: '',
    FLOTILLA_ADMIN_PASSWORD: '',
    FLOTILLA_KEY_PASSPHRASE: '',
    XDG_CONFIG_HOME: '',
    XDG_DATA_HOME: '',
  };
  // `npm start` = node scripts/ensure.mjs && node packages/cli/dist/src/bin.js up
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  assert.match(pkg.scripts.start, /node packages\/cli\/dist\/src\/bin\.js up$/);
  up = cluster.spawnCli('up', ['up', '--listen', `127.0.0.1:${port}`], env);
  await waitFor(
    'flotilla up to print its banner',
    () => {
      if (up.child.exitCode !== null) throw new Error(`flotilla up exited: ${up.output()}`);
      return Promise.resolve(/Flotilla is running at/.test(up.output()));
    },
    120_000,
  );
  shell = new Shell(repoRoot, { ...(process.env as Record<string, string>), ...env });
  await shell.run('shopt -s expand_aliases');
});

after(async () => {
  await shell?.close();
  await cluster.cleanup();
});

void test("the README's quick start runs as written, each command doing what it says", async () => {
  const lines = quickStartBlock();
  assert.ok(existsSync(cliBin));
  for (const text of lines) {
    const line = text.trim().replaceAll('127.0.0.1:7070', `127.0.0.1:${port}`);
    const check = checks.find(([pattern]) => pattern.test(line));
    assert.ok(check, `no check for the README line: ${line}`);
    const [, verify, options] = check;
    let problem: string | null = 'not run';
    let result: Result = { code: -1, stdout: '', stderr: '' };
    // A line waiting on something asynchronous (an agent enrolling) is run again, as a reader would.
    for (let attempt = 0; attempt < (options?.retry ? 60 : 1) && problem !== null; attempt++) {
      if (attempt > 0) await sleep(500);
      result = await shell.run(line);
      problem = await verify(result, shell);
    }
    assert.equal(
      problem,
      null,
      `${line}\nexit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
    );
  }
  // The quick start's data went to the fresh HOME, not into the repository.
  assert.ok(existsSync(join(home, '.local', 'share', 'flotilla', 'up', 'server', 'flotilla.db')));
  assert.ok(
    existsSync(
      join(home, '.local', 'share', 'flotilla', 'up', 'agent', 'apps', 'web', 'current', 'index.html'),
    ),
  );
});
