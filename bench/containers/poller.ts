/**
 * The client that polls the app (bench/containers/run.ts `poller`), on a thread of its own: the
 * bench runs the agent in its own process, and a poller on the main thread would count the
 * agent's work after the start (health window, commit) into the app's answer time. A real
 * client of the app is another process; this thread stands for it, for both sides alike.
 *
 * The thread is started before the timed section and waits for `since` (a worker's start-up
 * costs 100–200 ms of CPU, which at t0 fell on the update it measures), and each poll is a bare
 * HTTP/1.0 request on a TCP connection rather than undici's `fetch`: in a 2.3 s update the
 * poller took 0.41 s of CPU, now 0.15 s (`perf record -a`, 2026-12-07, bench/README.md
 * "containers").
 */
import { connect } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';

const { port, want } = workerData as { port: number; want: string };

/** One GET /: the body, or null when the connection fails or takes over 2 s. */
function get(): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const parts: Buffer[] = [];
    const done = (body: string | null): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(body);
    };
    const timer = setTimeout(() => done(null), 2000);
    socket.on('connect', () => socket.end(`GET / HTTP/1.0\r\nHost: 127.0.0.1:${port}\r\n\r\n`));
    socket.on('data', (d: Buffer) => parts.push(d));
    socket.on('error', () => done(null));
    socket.on('end', () => {
      const text = Buffer.concat(parts).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      done(/^HTTP\/1\.[01] 200 /.test(text) && split >= 0 ? text.slice(split + 4) : null);
    });
  });
}

parentPort?.once('message', (since: number) => {
  void (async () => {
    for (;;) {
      if ((await get())?.trim() === want) {
        parentPort?.postMessage({ ms: Date.now() - since });
        return;
      }
      if (Date.now() - since > 120_000) {
        parentPort?.postMessage({ error: `port ${port} never answered ${want}` });
        return;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
});
parentPort?.postMessage({ ready: true });
