/** Starts `server-main.js` as a child process on a given data directory and database. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { TEST_ADMIN_PASSWORD } from './app.js';

const MAIN = fileURLToPath(new URL('./server-main.js', import.meta.url));

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** Resolves with the signal or exit code once the process has ended. */
  exited: Promise<NodeJS.Signals | number | null>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

export async function startServerProcess(opts: {
  dataDir: string;
  /** A PostgreSQL URL; SQLite in the data directory otherwise. */
  database?: string;
  env?: Record<string, string>;
}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'test',
      FLOTILLA_DATA_DIR: opts.dataDir,
      FLOTILLA_LISTEN: '127.0.0.1:0',
      FLOTILLA_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
      FLOTILLA_ALLOW_SERVER_SIDE_SIGNING: 'true',
      FLOTILLA_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG_LEVEL ?? 'warn',
      ...(opts.database !== undefined && { FLOTILLA_DATABASE: opts.database }),
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = once(child, 'exit').then(
    ([code, signal]) => (signal as NodeJS.Signals | null) ?? (code as number | null),
  );
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.startsWith('listening '));
      if (line !== undefined) resolve(line.slice('listening '.length).trim());
    });
    void exited.then((how) =>
      reject(new Error(`the server exited (${String(how)}) before listening:\n${stderr}`)),
    );
  });
  return {
    url,
    child,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
