/**
 * What the agent remembers between runs, in the `kv` table of state.db: who it is (device id,
 * the server it enrolled with, its last known status) and cursors (state ETag, inventory hash).
 */
import type { DeviceStatus } from '@flotilla/protocol';
import { ioError } from './files.js';
import type { StateDatabase } from './db.js';

const KEYS = {
  deviceId: 'device.id',
  serverUrl: 'device.server_url',
  status: 'device.status',
  stateVersion: 'state.version',
  stateEtag: 'state.etag',
  inventoryHash: 'inventory.hash',
  inventoryReportedAt: 'inventory.reported_at',
} as const;

const STATUSES: readonly DeviceStatus[] = ['pending', 'accepted', 'rejected', 'revoked'];

export interface Enrollment {
  deviceId: string;
  serverUrl: string;
  status: DeviceStatus;
}

export class LocalState {
  private readonly getStmt;
  private readonly putStmt;
  private readonly deleteStmt;

  constructor(
    private readonly db: StateDatabase,
    private readonly path: string,
  ) {
    this.getStmt = db.prepare<[string], { value: string }>('SELECT value FROM kv WHERE key = ?');
    this.putStmt = db.prepare<[string, string, string]>(
      'INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
    );
    this.deleteStmt = db.prepare<[string]>('DELETE FROM kv WHERE key = ?');
  }

  enrollment(): Enrollment | null {
    const deviceId = this.get(KEYS.deviceId);
    const serverUrl = this.get(KEYS.serverUrl);
    if (deviceId === null || serverUrl === null) return null;
    return { deviceId, serverUrl, status: this.status() ?? 'pending' };
  }

  saveEnrollment(enrollment: Enrollment): void {
    this.write(() => {
      this.put(KEYS.deviceId, enrollment.deviceId);
      this.put(KEYS.serverUrl, enrollment.serverUrl);
      this.put(KEYS.status, enrollment.status);
    });
  }

  /** Forgets the enrollment and every cursor tied to it (the identity changed or the server lost us). */
  clearEnrollment(): void {
    this.write(() => {
      for (const key of Object.values(KEYS)) this.deleteStmt.run(key);
    });
  }

  status(): DeviceStatus | null {
    const value = this.get(KEYS.status);
    return STATUSES.find((s) => s === value) ?? null;
  }

  saveStatus(status: DeviceStatus): void {
    this.write(() => this.put(KEYS.status, status));
  }

  stateCursor(): { etag: string | null; stateVersion: number | null } {
    const version = this.get(KEYS.stateVersion);
    return { etag: this.get(KEYS.stateEtag), stateVersion: version === null ? null : Number(version) };
  }

  saveStateCursor(etag: string | null, stateVersion: number): void {
    this.write(() => {
      if (etag === null) this.deleteStmt.run(KEYS.stateEtag);
      else this.put(KEYS.stateEtag, etag);
      this.put(KEYS.stateVersion, String(stateVersion));
    });
  }

  lastInventory(): { hash: string | null; reportedAtMs: number | null } {
    const at = this.get(KEYS.inventoryReportedAt);
    return { hash: this.get(KEYS.inventoryHash), reportedAtMs: at === null ? null : Date.parse(at) };
  }

  saveInventoryReport(hash: string, reportedAtMs: number): void {
    this.write(() => {
      this.put(KEYS.inventoryHash, hash);
      this.put(KEYS.inventoryReportedAt, new Date(reportedAtMs).toISOString());
    });
  }

  private get(key: string): string | null {
    try {
      return this.getStmt.get(key)?.value ?? null;
    } catch (e) {
      throw ioError('read state database', this.path, e);
    }
  }

  private put(key: string, value: string): void {
    this.putStmt.run(key, value, new Date().toISOString());
  }

  private write(fn: () => void): void {
    try {
      this.db.transaction(fn)();
    } catch (e) {
      throw ioError('write state database', this.path, e);
    }
  }
}
