/**
 * One side of the remote-access stream multiplexer (framing and limits: @flotilla/protocol
 * remote.ts; docs/remote-access.md): streams over one WebSocket, each with a send window the peer
 * grants and a receive window this side grants as it passes data on. Nothing is buffered beyond
 * one window per stream in either direction. A peer breaking the framing or a window gets that
 * stream closed with FLT_STREAM_PROTOCOL; frames for streams it never had count as hostile
 * (`onHostile`), so the owner can drop a connection that keeps sending them.
 */
import {
  MUX_INITIAL_WINDOW,
  MUX_MAX_DATA,
  MUX_MAX_STREAMS,
  MUX_MAX_WINDOW,
  MuxFrameType,
  StreamClose,
  StreamOpen,
  decodeJsonPayload,
  decodeMuxFrame,
  encodeJsonFrame,
  encodeMuxFrame,
  encodeWindow,
  windowIncrement,
} from '@flotilla/protocol';
import type { MuxFrame } from '@flotilla/protocol';

export type MuxChannel = 'out' | 'err';

/** What a stream's owner does with what the peer sends. */
export interface MuxStreamSink {
  /** Data arrived; call `done` once it is passed on (written to a socket): the peer may then send more. */
  onData(chunk: Buffer, channel: MuxChannel, done: () => void): void;
  /** The peer sends no more data. */
  onEof(): void;
  /** Server: the agent's source is ready (TCP connected, command started, log open). */
  onOpened?(): void;
  /** The stream ended (either side, or the connection): called once. */
  onClose(result: StreamClose): void;
}

export interface MuxSessionOptions {
  send: (bytes: Uint8Array) => void;
  /** The server opens streams; the agent accepts them (`onOpen`). */
  role: 'server' | 'agent';
  /** Agent: a stream the server opened; return its sink (or throw a FlotillaError-like to refuse). */
  onOpen?: (stream: MuxStream, open: StreamOpen) => MuxStreamSink;
  /** A frame that cannot belong to any stream of this session, or a frame a role may not send. */
  onHostile?: (problem: string) => void;
  maxStreams?: number;
}

interface Pending {
  type: MuxFrameType;
  bytes: Uint8Array | null;
  resolve: () => void;
}

export class MuxStream {
  private sendWindow = MUX_INITIAL_WINDOW;
  private recvWindow = MUX_INITIAL_WINDOW;
  private readonly queue: Pending[] = [];
  private ended = false;
  private done = false;
  sink: MuxStreamSink | null = null;
  /** Bytes sent and received (audit, tests). */
  bytesSent = 0;
  bytesReceived = 0;

  constructor(
    readonly id: number,
    private readonly session: MuxSession,
  ) {}

  get closed(): boolean {
    return this.done;
  }

  /** Queues data (split into frames); resolves when all of it left within the window, or the stream ended. */
  write(chunk: Uint8Array, channel: MuxChannel = 'out'): Promise<void> {
    if (this.done || this.ended) return Promise.resolve();
    const type = channel === 'err' ? MuxFrameType.dataErr : MuxFrameType.data;
    let last: Promise<void> = Promise.resolve();
    for (let at = 0; at < chunk.length; at += MUX_MAX_DATA) {
      const bytes = chunk.subarray(at, at + MUX_MAX_DATA);
      last = new Promise<void>((resolve) => this.queue.push({ type, bytes, resolve }));
    }
    this.flush();
    return last;
  }

  /** Agent: the source is ready; tells the server. */
  opened(): void {
    if (!this.done) this.session.sendRaw(encodeMuxFrame(MuxFrameType.opened, this.id));
  }

  /** No more data from this side (sent after what is queued). */
  end(): void {
    if (this.done || this.ended) return;
    this.ended = true;
    this.queue.push({ type: MuxFrameType.eof, bytes: null, resolve: () => undefined });
    this.flush();
  }

  /** Ends the stream after what is queued, telling the peer why (exit code, error). */
  close(result: StreamClose = {}): void {
    if (this.done) return;
    this.ended = true;
    this.queue.push({ type: MuxFrameType.close, bytes: null, resolve: () => undefined });
    this.closeResult = result;
    this.flush();
  }

  /** Ends the stream now, dropping what is queued. */
  reset(result: StreamClose): void {
    if (this.done) return;
    this.session.sendRaw(encodeJsonFrame(MuxFrameType.close, this.id, result));
    this.finish(result);
  }

  private closeResult: StreamClose = {};

  /** @internal The connection is gone, or the peer closed. */
  finish(result: StreamClose): void {
    if (this.done) return;
    this.done = true;
    this.session.forget(this.id);
    for (const p of this.queue.splice(0)) p.resolve();
    this.sink?.onClose(result);
  }

  /** @internal */
  receive(frame: MuxFrame): void {
    switch (frame.type) {
      case MuxFrameType.data:
      case MuxFrameType.dataErr: {
        const n = frame.payload.length;
        if (n > this.recvWindow)
          return this.violate(`sent ${n} bytes with ${this.recvWindow} left in its window`);
        this.recvWindow -= n;
        this.bytesReceived += n;
        const chunk = Buffer.from(frame.payload.buffer, frame.payload.byteOffset, n);
        let granted = false;
        const done = () => {
          if (granted || this.done) return;
          granted = true;
          this.recvWindow += n;
          if (n > 0) this.session.sendRaw(encodeWindow(this.id, n));
        };
        if (!this.sink) return done();
        return this.sink.onData(chunk, frame.type === MuxFrameType.dataErr ? 'err' : 'out', done);
      }
      case MuxFrameType.window: {
        const inc = windowIncrement(frame);
        if (this.sendWindow + inc > MUX_MAX_WINDOW)
          return this.violate(`window would grow past ${MUX_MAX_WINDOW} bytes`);
        this.sendWindow += inc;
        return this.flush();
      }
      case MuxFrameType.eof:
        return this.sink?.onEof();
      case MuxFrameType.opened:
        return this.sink?.onOpened?.();
      case MuxFrameType.close: {
        const result = frame.payload.length === 0 ? {} : decodeJsonPayload(frame.payload, StreamClose);
        return this.finish(result ?? { error: { code: 'FLT_STREAM_PROTOCOL', message: 'malformed close' } });
      }
      case MuxFrameType.open:
        return this.violate('opened twice');
    }
  }

  private violate(problem: string): void {
    this.reset({ error: { code: 'FLT_STREAM_PROTOCOL', message: `stream ${this.id}: ${problem}` } });
  }

  private flush(): void {
    while (!this.done && this.queue.length > 0) {
      const head = this.queue[0] as Pending;
      if (head.type === MuxFrameType.close) {
        this.queue.shift();
        this.session.sendRaw(encodeJsonFrame(MuxFrameType.close, this.id, this.closeResult));
        head.resolve();
        this.finish(this.closeResult);
        return;
      }
      if (head.bytes === null) {
        this.queue.shift();
        this.session.sendRaw(encodeMuxFrame(head.type, this.id));
        head.resolve();
        continue;
      }
      if (this.sendWindow <= 0) return;
      const n = Math.min(head.bytes.length, this.sendWindow);
      this.session.sendRaw(encodeMuxFrame(head.type, this.id, head.bytes.subarray(0, n)));
      this.sendWindow -= n;
      this.bytesSent += n;
      if (n === head.bytes.length) {
        this.queue.shift();
        head.resolve();
      } else head.bytes = head.bytes.subarray(n);
    }
  }
}

export class MuxSession {
  private readonly streams = new Map<number, MuxStream>();
  private nextId = 1;
  /** Highest stream id seen or used: frames for lower ids that are gone are late, not hostile. */
  private highestId = 0;
  private closedAll = false;

  constructor(private readonly options: MuxSessionOptions) {}

  get size(): number {
    return this.streams.size;
  }

  /** Server: opens a stream for `request`; throws FLT_STREAM_LIMIT when too many are open. */
  open(request: StreamOpen, sink: MuxStreamSink): MuxStream {
    if (this.options.role !== 'server') throw new Error('only the server opens streams');
    if (this.closedAll) throw Object.assign(new Error('connection closed'), { code: 'FLT_DEVICE_OFFLINE' });
    if (this.streams.size >= (this.options.maxStreams ?? MUX_MAX_STREAMS))
      throw Object.assign(
        new Error(`at most ${this.options.maxStreams ?? MUX_MAX_STREAMS} streams per device`),
        {
          code: 'FLT_STREAM_LIMIT',
        },
      );
    const id = this.nextId++;
    this.highestId = id;
    const stream = new MuxStream(id, this);
    stream.sink = sink;
    this.streams.set(id, stream);
    this.sendRaw(encodeJsonFrame(MuxFrameType.open, id, request));
    return stream;
  }

  /** One binary frame from the peer. Never throws. */
  receive(bytes: Uint8Array): void {
    const decoded = decodeMuxFrame(bytes);
    if (!decoded.ok) {
      const stream = decoded.stream === null ? undefined : this.streams.get(decoded.stream);
      if (stream)
        stream.reset({ error: { code: 'FLT_STREAM_PROTOCOL', message: decoded.problem.slice(0, 1000) } });
      else this.options.onHostile?.(decoded.problem);
      return;
    }
    const frame = decoded.frame;
    const stream = this.streams.get(frame.stream);
    if (frame.type === MuxFrameType.open) return this.accept(frame, stream);
    if (stream) return stream.receive(frame);
    // A frame for a stream that ended a moment ago is late; one for a stream never opened is not.
    if (frame.stream > this.highestId) this.options.onHostile?.(`frame for unknown stream ${frame.stream}`);
  }

  /** The connection is gone: every stream ends with `result`, nothing more is sent. */
  closeAll(result: StreamClose): void {
    this.closedAll = true;
    for (const stream of [...this.streams.values()]) stream.finish(result);
  }

  /** @internal */
  sendRaw(bytes: Uint8Array): void {
    if (!this.closedAll) this.options.send(bytes);
  }

  /** @internal */
  forget(id: number): void {
    this.streams.delete(id);
  }

  private accept(frame: MuxFrame, existing: MuxStream | undefined): void {
    const refuse = (code: string, message: string) =>
      this.sendRaw(encodeJsonFrame(MuxFrameType.close, frame.stream, { error: { code, message } }));
    if (this.options.role !== 'agent' || !this.options.onOpen) {
      this.options.onHostile?.('the agent may not open streams');
      return;
    }
    if (existing) {
      existing.reset({
        error: { code: 'FLT_STREAM_PROTOCOL', message: `stream ${frame.stream} opened twice` },
      });
      return;
    }
    if (frame.stream <= this.highestId) {
      refuse('FLT_STREAM_PROTOCOL', `stream ids must increase (${frame.stream} after ${this.highestId})`);
      return;
    }
    this.highestId = frame.stream;
    const open = decodeJsonPayload(frame.payload, StreamOpen);
    if (open === null) return refuse('FLT_STREAM_PROTOCOL', 'malformed open');
    if (this.streams.size >= (this.options.maxStreams ?? MUX_MAX_STREAMS))
      return refuse('FLT_STREAM_LIMIT', 'too many streams open on this device');
    const stream = new MuxStream(frame.stream, this);
    this.streams.set(frame.stream, stream);
    try {
      stream.sink = this.options.onOpen(stream, open);
    } catch (e) {
      const error = e as { code?: unknown; message?: unknown };
      stream.reset({
        error: {
          code: typeof error.code === 'string' ? error.code.slice(0, 64) : 'FLT_INTERNAL',
          message: typeof error.message === 'string' ? error.message.slice(0, 1000) : 'refused',
        },
      });
    }
  }
}
