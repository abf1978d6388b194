import type { AppProcessStatus, DeviceApp, DeployStatusDevice, UpdatePhase } from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { DeviceAppsTable } from '../db/schema.js';

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

function errorOf(text: string | null): { code: string; message: string } | null {
  if (text === null) return null;
  const parsed = JSON.parse(text) as { code: string; message: string };
  return { code: parsed.code, message: parsed.message };
}

function processOf(text: string | null): AppProcessStatus | null {
  return text === null ? null : (JSON.parse(text) as AppProcessStatus);
}

export function toDeviceApp(row: Selectable<DeviceAppsTable>): DeviceApp {
  return {
    app: row.app,
    desired: row.desired,
    current: row.current,
    phase: row.phase as UpdatePhase | null,
    bytesDone: num(row.bytes_done),
    bytesTotal: num(row.bytes_total),
    bytesFetched: num(row.bytes_fetched),
    error: errorOf(row.error),
    process: processOf(row.process_status),
    updatedAt: row.updated_at,
  };
}

export function toStatusDevice(row: Selectable<DeviceAppsTable>): DeployStatusDevice {
  const { app: _app, ...rest } = toDeviceApp(row);
  return { deviceId: row.device_id, ...rest };
}
