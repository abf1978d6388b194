/**
 * The agent's end of remote-access streams (docs/remote-access.md): a tunnel is a TCP connection
 * to the app's service (Runtime.tunnelAddress) or to an allowed port of the device itself; exec
 * runs a command through Runtime.exec; logs streams Runtime.logs as newline-delimited JSON. Each
 * reads from its source only as fast as the stream's window lets it send.
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { FlotillaError, errorSummary } from '@flotilla/protocol';
import type { ServiceStats, StreamOpen } from '@flotilla/protocol';
import type { MuxStream, MuxStreamSink } from '@flotilla/node-kit';
import type { Logger } from 'pino';
import type { LogLine, Runtime, ServiceAction } from '../runtimes/runtime.js';

/** What the control channel needs from the agent to serve remote access. */
export interface RemoteAccess {
  /** The runtime of an installed app (FLT_APP_NOT_INSTALLED otherwise). */
  runtimeOf(app: string): Runtime;
  /** Ports of the device itself (127.0.0.1) a tunnel without an app may reach. */
  tunnelHostPorts: ReadonlySet<number>;
  control(app: string, action: ServiceAction, service: string | undefined): Promise<void>;
  stats(app: string): Promise<ServiceStats[]>;
}

/** Log bytes queued for a slow reader before lines are dropped (and the drop said in the stream). */
export const LOG_QUEUE_MAX_BYTES = 1024 * 1024;

function unsupported(runtime: Runtime, what: string): FlotillaError {
  return new FlotillaError(
    'FLT_RUNTIME_UNSUPPORTED',
    `the ${runtime.kind} runtime does not support ${what}`,
    {
      details: { runtime: runtime.kind },
    },
  );
}

function closeWith(stream: MuxStream, e: unknown): void {
  const error = errorSummary(e, 1000);
  stream.close({ error: { code: error.code.slice(0, 64), message: error.message } });
}

/** The sink for a stream the server opened; throws (refusing it) when it cannot even start. */
export function openStream(
  remote: RemoteAccess,
  stream: MuxStream,
  open: StreamOpen,
  logger: Logger,
): MuxStreamSink {
  switch (open.kind) {
    case 'tunnel':
      return tunnel(remote, stream, open, logger);
    case 'exec':
      return exec(remote, stream, open);
    case 'logs':
      return logs(remote, stream, open);
  }
}

function tunnel(
  remote: RemoteAccess,
  stream: MuxStream,
  open: Extract<StreamOpen, { kind: 'tunnel' }>,
  logger: Logger,
): MuxStreamSink {
  let address: Promise<{ host: string; port: number }>;
  if (open.app === undefined) {
    if (!remote.tunnelHostPorts.has(open.port))
      throw new FlotillaError(
        'FLT_PORT_NOT_ALLOWED',
        `port ${open.port} of this device is not in the agent's tunnelHostPorts`,
        { details: { port: open.port } },
      );
    address = Promise.resolve({ host: '127.0.0.1', port: open.port });
  } else {
    const runtime = remote.runtimeOf(open.app);
    if (!runtime.tunnelAddress) throw unsupported(runtime, 'tunnels');
    address = runtime.tunnelAddress(open.app, open.service, open.port);
  }
  const socket = new PassThroughSocket();
  address.then(
    (to) => {
      if (stream.closed) return;
      const s = connect({ host: to.host, port: to.port, allowHalfOpen: true });
      socket.attach(s);
      s.once('connect', () => stream.opened());
      s.on('data', (chunk: Buffer) => {
        s.pause();
        void stream.write(chunk).then(() => s.resume());
      });
      s.on('end', () => stream.end());
      s.on('error', (err) => {
        logger.debug({ err, stream: stream.id }, 'tunnel connection failed');
        closeWith(
          stream,
          new FlotillaError('FLT_NETWORK', `tunnel to ${to.host}:${to.port}: ${err.message}`),
        );
      });
      s.on('close', () => stream.close());
    },
    (e: unknown) => closeWith(stream, e),
  );
  return {
    onData: (chunk, _channel, done) => socket.write(chunk, done),
    onEof: () => socket.end(),
    onClose: () => socket.destroy(),
  };
}

/** Holds what arrives before the TCP connection exists (at most one window), then passes it on. */
class PassThroughSocket {
  private socket: Socket | null = null;
  private readonly early: { chunk: Buffer; done: () => void }[] = [];
  private ended = false;
  private destroyed = false;

  attach(socket: Socket): void {
    if (this.destroyed) {
      socket.destroy();
      return;
    }
    this.socket = socket;
    for (const { chunk, done } of this.early.splice(0)) socket.write(chunk, () => done());
    if (this.ended) socket.end();
  }

  write(chunk: Buffer, done: () => void): void {
    if (this.socket) this.socket.write(chunk, () => done());
    else this.early.push({ chunk, done });
  }

  end(): void {
    this.ended = true;
    this.socket?.end();
  }

  destroy(): void {
    this.destroyed = true;
    this.socket?.destroy();
  }
}

function exec(
  remote: RemoteAccess,
  stream: MuxStream,
  open: Extract<StreamOpen, { kind: 'exec' }>,
): MuxStreamSink {
  const runtime = remote.runtimeOf(open.app);
  if (!runtime.exec) throw unsupported(runtime, 'exec');
  const abort = new AbortController();
  const stdin = new PassThrough();
  const output = (channel: 'out' | 'err') =>
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        stream.write(chunk, channel).then(() => callback(), callback);
      },
    });
  const stdout = output('out');
  const stderr = output('err');
  runtime.exec(open.app, open.service, open.argv, { stdin, stdout, stderr, signal: abort.signal }).then(
    // What the command wrote and the writables still hold goes out before the exit code.
    async ({ exitCode }) => {
      await Promise.all([drained(stdout), drained(stderr)]);
      stream.close({ exitCode });
    },
    (e: unknown) => closeWith(stream, e),
  );
  stream.opened();
  return {
    onData: (chunk, _channel, done) => {
      stdin.write(chunk, () => done());
    },
    onEof: () => stdin.end(),
    onClose: () => {
      abort.abort();
      stdin.destroy();
    },
  };
}

/** Ends `w` and resolves when everything written to it was passed on (or it failed). */
function drained(w: Writable): Promise<void> {
  if (w.writableFinished || w.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    w.once('finish', () => resolve());
    w.once('error', () => resolve());
    w.once('close', () => resolve());
    w.end();
  });
}

function logs(
  remote: RemoteAccess,
  stream: MuxStream,
  open: Extract<StreamOpen, { kind: 'logs' }>,
): MuxStreamSink {
  const runtime = remote.runtimeOf(open.app);
  if (!runtime.logs) throw unsupported(runtime, 'logs');
  const abort = new AbortController();
  let queued = 0;
  let dropped = 0;
  const push = (line: LogLine) => {
    const bytes = Buffer.from(`${JSON.stringify(line)}\n`);
    queued += bytes.length;
    void stream.write(bytes).then(() => {
      queued -= bytes.length;
    });
  };
  const onLine = (line: LogLine) => {
    if (stream.closed) return;
    if (queued > LOG_QUEUE_MAX_BYTES) {
      dropped += 1;
      return;
    }
    if (dropped > 0) {
      push({
        stream: 'stderr',
        at: Date.now(),
        text: `[flotilla: ${dropped} lines dropped: the reader was slower than the log]`,
      });
      dropped = 0;
    }
    push(line);
  };
  runtime
    .logs(
      open.app,
      {
        follow: open.follow,
        signal: abort.signal,
        ...(open.service !== undefined && { service: open.service }),
        ...(open.tail !== undefined && { tail: open.tail }),
        ...(open.since !== undefined && { since: open.since }),
      },
      onLine,
    )
    .then(
      () => stream.close(),
      (e: unknown) => (abort.signal.aborted ? stream.close() : closeWith(stream, e)),
    );
  stream.opened();
  return {
    onData: (_chunk, _channel, done) => done(),
    onEof: () => undefined,
    onClose: () => abort.abort(),
  };
}
