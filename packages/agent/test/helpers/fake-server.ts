/**
 * A small in-test implementation of the device contract (protocol/api/device.ts and ws.ts):
 * nonce, enroll, token challenge, token, state with ETag, inventory, and the WebSocket channel.
 * It verifies the agent's signatures with the protocol helpers and records anything it did not
 * expect in `unexpected`, which every test asserts to be empty: it fails loudly.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  DeviceRoutes,
  EnrollRequest,
  FlotillaError,
  HelloData,
  InventoryReport,
  ServerCommands,
  TokenChallengeRequest,
  TokenRequest,
  WsClose,
  WsMessage,
} from '@flotilla/protocol';
import {
  deviceIdFromPublicKey,
  enrollmentMessage,
  randomSecret,
  tokenChallengeMessage,
  verifyMessage,
} from '@flotilla/node-kit';
import type { DeviceStatus, ErrorCode, Facts } from '@flotilla/protocol';
import type { Static, TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { WebSocketServer } from 'ws';
import type WebSocket from 'ws';

export interface FakeDevice {
  id: string;
  publicKey: string;
  status: DeviceStatus;
  tags: string[];
  facts: Facts;
  stateVersion: number;
}

export interface RequestRecord {
  method: string;
  path: string;
  status: number;
}

export interface ReceivedFrame {
  deviceId: string;
  message: WsMessage;
}

export class FakeDeviceServer {
  readonly unexpected: string[] = [];
  readonly requests: RequestRecord[] = [];
  readonly frames: ReceivedFrame[] = [];
  readonly closeCodes: number[] = [];
  readonly devices = new Map<string, FakeDevice>();
  wsConnections = 0;
  pollIntervalMs = 1000;
  heartbeatIntervalMs = 1000;
  tokenTtlMs = 15 * 60_000;
  private readonly regkeys = new Map<string, { autoAccept: boolean; tags: string[] }>();
  private readonly nonces = new Set<string>();
  private readonly challenges = new Map<string, string>();
  private readonly tokens = new Map<string, { deviceId: string; expiresAtMs: number }>();
  private readonly sockets = new Map<string, WebSocket>();
  /** Devices whose sockets get no answer at all (no pong, no heartbeat reply): a dead path. */
  readonly frozen = new Set<string>();
  private readonly wss = new WebSocketServer({ noServer: true, autoPong: false });
  private server: Server | null = null;
  private port = 0;
  private seq = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  addRegistrationKey(options: { autoAccept: boolean; tags?: string[] }): string {
    const key = randomSecret('flt_rk_');
    this.regkeys.set(key, { autoAccept: options.autoAccept, tags: options.tags ?? [] });
    return key;
  }

  /** Listens (again, on the same port after a stop: a server restart keeps its data). */
  async start(): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        this.unexpected.push(`handler crashed: ${String(e)}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    this.port = address.port;
    this.server = server;
  }

  /** Goes away abruptly: every socket cut, nothing listening. */
  async stop(): Promise<void> {
    for (const ws of this.sockets.values()) ws.terminate();
    this.sockets.clear();
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  device(id: string): FakeDevice {
    const device = this.devices.get(id);
    if (!device) throw new Error(`no device ${id}`);
    return device;
  }

  isConnected(deviceId: string): boolean {
    return this.sockets.has(deviceId);
  }

  count(method: string, path: string, status?: number): number {
    return this.requests.filter(
      (r) => r.method === method && r.path === path && (status === undefined || r.status === status),
    ).length;
  }

  /** An operator action: bumps the state version and tells the device, as the real server does. */
  changeState(deviceId: string, change: (device: FakeDevice) => void = () => undefined): void {
    const device = this.device(deviceId);
    change(device);
    device.stateVersion += 1;
    this.send(deviceId, ServerCommands.stateChanged, { stateVersion: device.stateVersion });
  }

  /** Closes the device's socket with a code, without any other notice. */
  closeSocket(deviceId: string, code: number, reason = ''): void {
    this.sockets.get(deviceId)?.close(code, reason);
  }

  send(deviceId: string, command: string, data: unknown): string {
    const id = `s${++this.seq}`;
    this.sendRaw(deviceId, JSON.stringify({ id, command, data }));
    return id;
  }

  sendRaw(deviceId: string, payload: string | Buffer, binary = false): void {
    this.sockets.get(deviceId)?.send(payload, { binary });
  }

  expireTokens(): void {
    for (const token of this.tokens.values()) token.expiresAtMs = 0;
  }

  /** The server lost its database: the device, its tokens and its socket are gone. */
  forgetDevice(deviceId: string): void {
    this.devices.delete(deviceId);
    for (const [token, held] of this.tokens) if (held.deviceId === deviceId) this.tokens.delete(token);
    this.sockets.get(deviceId)?.close(WsClose.unauthenticated, 'unknown device');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0] ?? '';
    const method = req.method ?? '';
    const body = await readJson(req);
    const reply = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      this.requests.push({ method, path, status });
      res.writeHead(status, {
        ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      });
      res.end(payload === undefined ? undefined : JSON.stringify(payload));
    };
    const fail = (code: ErrorCode, message: string) => {
      const error = new FlotillaError(code, message);
      reply(error.statusCode, error.toJSON());
    };
    const key = `${method} ${path}`;
    switch (key) {
      case `POST ${DeviceRoutes.enrollNonce}`: {
        const nonce = randomSecret('n_', 24);
        this.nonces.add(nonce);
        return reply(200, { nonce, expiresAt: new Date(Date.now() + 300_000).toISOString() });
      }
      case `POST ${DeviceRoutes.enroll}`: {
        if (!this.valid(EnrollRequest, body, key)) return fail('FLT_VALIDATION', 'bad enroll request');
        if (!this.nonces.delete(body.nonce))
          return this.refuse(key, 'unknown or reused nonce', fail, 'FLT_NONCE_INVALID');
        const message = enrollmentMessage(body.nonce, body.publicKey, body.registrationKey);
        if (!body.signature || !verifyMessage(body.publicKey, message, body.signature)) {
          return this.refuse(key, 'bad enrollment signature', fail, 'FLT_SIGNATURE_INVALID');
        }
        const regkey = this.regkeys.get(body.registrationKey);
        if (!regkey) return fail('FLT_REGKEY_INVALID', 'unknown registration key');
        const id = deviceIdFromPublicKey(body.publicKey);
        const existing = this.devices.get(id);
        if (existing) return reply(200, { deviceId: id, status: existing.status });
        const device: FakeDevice = {
          id,
          publicKey: body.publicKey,
          status: regkey.autoAccept ? 'accepted' : 'pending',
          tags: [...new Set([...regkey.tags, ...(body.tags ?? [])])],
          facts: body.facts ?? {},
          stateVersion: 1,
        };
        this.devices.set(id, device);
        return reply(201, { deviceId: id, status: device.status });
      }
      case `POST ${DeviceRoutes.tokenChallenge}`: {
        if (!this.valid(TokenChallengeRequest, body, key))
          return fail('FLT_VALIDATION', 'bad challenge request');
        if (!this.devices.has(body.deviceId)) return fail('FLT_DEVICE_NOT_FOUND', 'no such device');
        const challenge = randomSecret('c_', 24);
        this.challenges.set(challenge, body.deviceId);
        return reply(200, { challenge, expiresAt: new Date(Date.now() + 300_000).toISOString() });
      }
      case `POST ${DeviceRoutes.token}`: {
        if (!this.valid(TokenRequest, body, key)) return fail('FLT_VALIDATION', 'bad token request');
        const device = this.devices.get(body.deviceId);
        if (!device) return fail('FLT_DEVICE_NOT_FOUND', 'no such device');
        if (this.challenges.get(body.challenge) !== body.deviceId)
          return this.refuse(key, 'unknown or reused challenge', fail, 'FLT_NONCE_INVALID');
        this.challenges.delete(body.challenge);
        if (
          !verifyMessage(
            device.publicKey,
            tokenChallengeMessage(body.challenge, body.deviceId),
            body.signature,
          )
        ) {
          return this.refuse(key, 'bad token signature', fail, 'FLT_SIGNATURE_INVALID');
        }
        if (device.status === 'revoked') return fail('FLT_DEVICE_REVOKED', 'device revoked');
        if (device.status === 'rejected') return fail('FLT_DEVICE_REJECTED', 'device rejected');
        const token = randomSecret('flt_dt_');
        const expiresAtMs = Date.now() + this.tokenTtlMs;
        this.tokens.set(token, { deviceId: device.id, expiresAtMs });
        return reply(200, { token, expiresAt: new Date(expiresAtMs).toISOString(), status: device.status });
      }
      case `GET ${DeviceRoutes.state}`: {
        const device = this.authenticate(req, fail);
        if (!device) return;
        const etag = `"${device.stateVersion}-${device.status}"`;
        if (req.headers['if-none-match'] === etag) return reply(304, undefined, { etag });
        const state = {
          deviceId: device.id,
          status: device.status,
          tags: device.tags,
          stateVersion: device.stateVersion,
          pollIntervalMs: this.pollIntervalMs,
        };
        return reply(200, state, { etag });
      }
      case `PUT ${DeviceRoutes.inventory}`: {
        const device = this.authenticate(req, fail);
        if (!device) return;
        if (!this.valid(InventoryReport, body, key)) return fail('FLT_VALIDATION', 'bad inventory');
        device.facts = body.facts;
        return reply(204);
      }
      default:
        this.unexpected.push(`unexpected request ${key}`);
        return fail('FLT_ROUTE_NOT_FOUND', `no route ${key}`);
    }
  }

  private refuse(
    key: string,
    what: string,
    fail: (code: ErrorCode, message: string) => void,
    code: ErrorCode,
  ) {
    this.unexpected.push(`${key}: ${what}`);
    fail(code, what);
  }

  private valid<T extends TSchema>(schema: T, body: unknown, key: string): body is Static<T> {
    if (Value.Check(schema, body)) return true;
    this.unexpected.push(
      `${key}: body does not match the protocol: ${[...Value.Errors(schema, body)].map((e) => `${e.path} ${e.message}`).join('; ')}`,
    );
    return false;
  }

  private deviceForToken(
    header: string | undefined,
  ): { device: FakeDevice } | { code: ErrorCode; message: string } {
    const token = /^Bearer (\S+)$/.exec(header ?? '')?.[1];
    const held = token === undefined ? undefined : this.tokens.get(token);
    if (!held) return { code: 'FLT_TOKEN_INVALID', message: 'invalid token' };
    if (held.expiresAtMs <= Date.now()) return { code: 'FLT_TOKEN_EXPIRED', message: 'token expired' };
    const device = this.devices.get(held.deviceId);
    if (!device) return { code: 'FLT_TOKEN_INVALID', message: 'invalid token' };
    if (device.status === 'revoked') return { code: 'FLT_DEVICE_REVOKED', message: 'device revoked' };
    if (device.status === 'rejected') return { code: 'FLT_DEVICE_REJECTED', message: 'device rejected' };
    return { device };
  }

  private authenticate(
    req: IncomingMessage,
    fail: (code: ErrorCode, message: string) => void,
  ): FakeDevice | null {
    const result = this.deviceForToken(req.headers.authorization);
    if ('device' in result) return result.device;
    fail(result.code, result.message);
    return null;
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
    const path = (req.url ?? '').split('?')[0];
    if (path !== DeviceRoutes.ws) {
      this.unexpected.push(`unexpected upgrade ${path}`);
      socket.destroy();
      return;
    }
    const result = this.deviceForToken(req.headers.authorization);
    if (!('device' in result)) {
      const error = new FlotillaError(result.code, result.message);
      this.requests.push({ method: 'UPGRADE', path: DeviceRoutes.ws, status: error.statusCode });
      const body = JSON.stringify(error.toJSON());
      socket.end(
        `HTTP/1.1 ${error.statusCode} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    const device = result.device;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.requests.push({ method: 'UPGRADE', path: DeviceRoutes.ws, status: 101 });
      this.wsConnections += 1;
      this.sockets.get(device.id)?.close(WsClose.replaced, 'replaced');
      this.sockets.set(device.id, ws);
      ws.on('close', (code) => {
        this.closeCodes.push(code);
        if (this.sockets.get(device.id) === ws) this.sockets.delete(device.id);
      });
      ws.on('ping', (data) => {
        if (!this.frozen.has(device.id)) ws.pong(data);
      });
      ws.on('message', (data, isBinary) =>
        this.onFrame(device, ws, (data as Buffer).toString('utf8'), isBinary),
      );
    });
  }

  private onFrame(device: FakeDevice, ws: WebSocket, text: string, isBinary: boolean) {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      message = undefined;
    }
    if (isBinary || !Value.Check(WsMessage, message)) {
      this.unexpected.push(`malformed frame from the agent: ${text.slice(0, 200)}`);
      return;
    }
    this.frames.push({ deviceId: device.id, message });
    switch (message.command) {
      case 'hello':
        if (!Value.Check(HelloData, message.data))
          this.unexpected.push(`bad hello data: ${JSON.stringify(message.data)}`);
        ws.send(
          JSON.stringify({
            id: message.id,
            command: ServerCommands.welcome,
            data: {
              deviceId: device.id,
              status: device.status,
              stateVersion: device.stateVersion,
              heartbeatIntervalMs: this.heartbeatIntervalMs,
            },
          }),
        );
        return;
      case 'heartbeat':
        if (this.frozen.has(device.id)) return;
        ws.send(JSON.stringify({ id: message.id, command: ServerCommands.heartbeat, data: {} }));
        return;
      case 'ack':
        return;
      default:
        this.unexpected.push(`unexpected command from the agent: ${message.command}`);
    }
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  if (chunks.length === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return Symbol('not json');
  }
}
