/**
 * The agent's idle footprint (issue 20, bench/README.md "agent footprint"): a real server, a real
 * agent (this checkout's CLI, or the self-contained bundle with --bundle DIR) enrolled and running
 * one process app; the agent process's resident memory (VmRSS) and CPU time are sampled every 5 s
 * for the given duration. With --apply-mb N, it then deploys a second release of the app carrying
 * an N MiB file of random bytes and samples the agent every 250 ms while it applies it (a timer,
 * beside the status polls), then for 45 s after (the rebuild workers end 30 s after the last
 * update). Prints the figures, with the resident memory's anonymous / file-backed split; asserts
 * nothing.
 *
 *   node bench/dist/agent/footprint.js [seconds=60] [--bundle DIR] [--apply-mb 500]
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { randomFillSync } from 'node:crypto';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const here = dirname(fileURLToPath(import.meta.url));
const cliBin = join(here, '..', '..', '..', 'packages', 'cli', 'dist', 'src', 'bin.js');
const PASSWORD = 'bench-admin-password-1234';
const args = process.argv.slice(2);
const bundleAt = args.indexOf('--bundle');
const bundle = bundleAt >= 0 ? args[bundleAt + 1] : undefined;
const applyAt = args.indexOf('--apply-mb');
const applyMb = applyAt >= 0 ? Number(args[applyAt + 1]) : 0;
const seconds = Number(
  args.find((a, i) => /^\d+$/.test(a) && args[i - 1] !== '--bundle' && args[i - 1] !== '--apply-mb') ?? 60,
);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function until<T>(what: string, f: () => Promise<T | null>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

function rssKb(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0));
}
/** The resident memory's split: anonymous (heaps, malloc) and file-backed (mostly the Node binary's pages). */
function rssSplit(pid: number): Promise<string> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => {
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
    return `${(kb('RssAnon') / 1024).toFixed(1)} / ${(kb('RssFile') / 1024).toFixed(1)}`;
  });
}
async function cpuTicks(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

const work = await mkdtemp(join(tmpdir(), 'flt-footprint-'));
const procs: ChildProcess[] = [];
try {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = { ...process.env, FLOTILLA_CONFIG_DIR: join(work, 'cli'), FLOTILLA_LOG_LEVEL: 'warn' };
  const server = spawn(
    process.execPath,
    [cliBin, 'server', '--data-dir', join(work, 'server'), '--listen', `127.0.0.1:${port}`],
    {
      env: { ...env, FLOTILLA_ADMIN_PASSWORD: PASSWORD },
      stdio: 'ignore',
    },
  );
  procs.push(server);
  await until('server', async () => ((await fetch(`${url}/readyz`)).ok ? true : null));
  const cli = (a: string[], input = '') => {
    const r = spawnSync(process.execPath, [cliBin, ...a], { env, input, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`flotilla ${a.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  cli(['login', '--server', url, '--user', 'admin', '--password-stdin'], `${PASSWORD}\n`);
  cli(['keys', 'init', '--no-passphrase']);
  const key = JSON.parse(cli(['regkeys', 'create', '--name', 'bench', '--auto-accept', '--json'])) as {
    secret: string;
  };
  const dataDir = join(work, 'agent');
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, 'key'), key.secret);
  const agentArgs = [
    'agent',
    '--server',
    url,
    '--data-dir',
    dataDir,
    '--registration-key-file',
    join(dataDir, 'key'),
    '--log-level',
    'warn',
  ];
  const agent = bundle
    ? spawn(join(bundle, 'bin', 'flotilla-agent'), agentArgs, { stdio: 'ignore' })
    : spawn(process.execPath, [cliBin, ...agentArgs], { stdio: 'ignore' });
  procs.push(agent);
  const deviceId = await until('enrolled', () => {
    const list = JSON.parse(cli(['devices', 'ls', '--json'])) as { items: { id: string; status: string }[] };
    return Promise.resolve(list.items.find((d) => d.status === 'accepted')?.id ?? null);
  });
  const app = join(work, 'app');
  await mkdir(app, { recursive: true });
  await writeFile(join(app, 'app.cjs'), 'setInterval(() => {}, 1 << 30);\n');
  cli([
    'release',
    'push',
    app,
    '--app',
    'idle',
    '--version',
    '1.0.0',
    '--runtime',
    'process',
    '--',
    process.execPath,
    './app.cjs',
  ]);
  cli(['deploy', 'idle@1.0.0', '--device', deviceId]);
  await until('app committed', () => {
    const s = JSON.parse(cli(['deploy', 'status', 'idle@1.0.0', '--json'])) as {
      devices: { phase: string | null }[];
    };
    return Promise.resolve(s.devices[0]?.phase === 'committed' ? true : null);
  });
  const pid = agent.pid!;
  const hz = 100;
  const samples: number[] = [];
  const ticks0 = await cpuTicks(pid);
  const t0 = Date.now();
  while (Date.now() - t0 < seconds * 1000) {
    samples.push(await rssKb(pid));
    await new Promise((r) => setTimeout(r, 5000));
  }
  samples.push(await rssKb(pid));
  const cpu = ((await cpuTicks(pid)) - ticks0) / hz / ((Date.now() - t0) / 1000);
  const mb = (kb: number) => (kb / 1024).toFixed(1);
  console.log(
    `agent footprint (${bundle ? `bundle ${bundle}` : 'source checkout'}), idle with one process app, ${seconds} s`,
  );
  console.log(`| measure | value |\n| --- | ---: |`);
  console.log(`| RSS after commit (MB) | ${mb(samples[0]!)} |`);
  console.log(`| RSS mean (MB) | ${mb(samples.reduce((a, b) => a + b, 0) / samples.length)} |`);
  console.log(`| RSS max (MB) | ${mb(Math.max(...samples))} |`);
  console.log(`| RSS at end (MB) | ${mb(samples.at(-1)!)} |`);
  console.log(`| RSS at end, anonymous / file-backed (MB) | ${await rssSplit(pid)} |`);
  console.log(`| CPU (% of one core) | ${(cpu * 100).toFixed(2)} |`);
  if (applyMb > 0) {
    // A second release: the app plus applyMb MiB of incompressible bytes, written in 16 MiB blocks.
    const big = await open(join(app, 'payload.bin'), 'w');
    const block = Buffer.alloc(16 * 1024 * 1024);
    for (let left = applyMb * 1024 * 1024; left > 0; left -= block.length) {
      randomFillSync(block);
      await big.write(block, 0, Math.min(block.length, left));
    }
    await big.close();
    const pushStart = Date.now();
    cli([
      'release',
      'push',
      app,
      '--app',
      'idle',
      '--version',
      '2.0.0',
      '--runtime',
      'process',
      '--',
      process.execPath,
      './app.cjs',
    ]);
    const pushSeconds = (Date.now() - pushStart) / 1000;
    await rm(join(app, 'payload.bin'));
    const before = await rssKb(pid);
    const applyTicks0 = await cpuTicks(pid);
    const applyStart = Date.now();
    cli(['deploy', 'idle@2.0.0', '--device', deviceId]);
    // Sampled every 250 ms by a timer, apart from the status polls: a CLI call takes a second or
    // more on a loaded machine, and sampling between polls only missed the peaks.
    const during: number[] = [];
    const sampler = setInterval(() => {
      void rssKb(pid).then(
        (kb) => during.push(kb),
        () => undefined,
      );
    }, 250);
    let phase: string | null = null;
    try {
      while (phase !== 'committed' && phase !== 'failed' && phase !== 'rolled-back') {
        await new Promise((r) => setTimeout(r, 2000));
        const { stdout } = await execFileAsync(
          process.execPath,
          [cliBin, 'deploy', 'status', 'idle@2.0.0', '--json'],
          {
            env,
          },
        );
        const s = JSON.parse(stdout) as { devices: { phase: string | null }[] };
        phase = s.devices[0]?.phase ?? null;
        if (Date.now() - applyStart > 20 * 60_000) throw new Error('timed out applying the update');
      }
    } finally {
      clearInterval(sampler);
    }
    const applySeconds = (Date.now() - applyStart) / 1000;
    const applyCpu = ((await cpuTicks(pid)) - applyTicks0) / hz;
    const afterSamples: number[] = [];
    for (let i = 0; i < 9; i++) {
      await new Promise((r) => setTimeout(r, 5000));
      afterSamples.push(await rssKb(pid));
    }
    console.log(`\napplying a ${applyMb} MiB update (${phase}; push ${pushSeconds.toFixed(1)} s)`);
    console.log(`| measure | value |\n| --- | ---: |`);
    console.log(`| RSS before (MB) | ${mb(before)} |`);
    console.log(`| RSS max while applying (MB) | ${mb(Math.max(...during))} |`);
    console.log(
      `| RSS mean while applying (MB) | ${mb(during.reduce((a, b) => a + b, 0) / during.length)} |`,
    );
    console.log(`| apply time, deploy to committed (s) | ${applySeconds.toFixed(1)} |`);
    console.log(`| agent CPU while applying (s) | ${applyCpu.toFixed(1)} |`);
    console.log(`| RSS 10 s after commit (MB) | ${mb(afterSamples[1]!)} |`);
    console.log(`| RSS 45 s after commit (MB) | ${mb(afterSamples.at(-1)!)} |`);
    console.log(`| RSS 45 s after commit, anonymous / file-backed (MB) | ${await rssSplit(pid)} |`);
  }
} finally {
  for (const p of procs.reverse()) {
    p.kill('SIGTERM');
    await new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)));
  }
  await rm(work, { recursive: true, force: true });
}
