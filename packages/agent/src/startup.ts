/** Everything the agent checks and opens on disk before it talks to anyone. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { AgentConfig } from './config.js';
import { openStateDatabase } from './state/db.js';
import type { StateDatabase } from './state/db.js';
import { ensurePrivateDir } from './state/files.js';
import { loadOrCreateIdentity } from './state/identity.js';
import type { DeviceIdentity } from './state/identity.js';
import { LocalState } from './state/local-state.js';

export interface LocalSetup {
  db: StateDatabase;
  state: LocalState;
  identity: DeviceIdentity;
  /** The server to talk to: configured, else the one the device enrolled with; null offline. */
  serverUrl: string | null;
}

/** Opens the data dir, state.db and identity; throws FLT_IO / FLT_CONFIG_INVALID with what to do. */
export function prepareLocalState(config: AgentConfig, logger: Logger): LocalSetup {
  ensurePrivateDir(config.dataDir);
  const dbPath = join(config.dataDir, 'state.db');
  const db = openStateDatabase(dbPath);
  try {
    const state = new LocalState(db, dbPath);
    const identity = loadOrCreateIdentity(config.dataDir, (message) => logger.warn(message));
    const enrollment = state.enrollment();
    if (identity.created && enrollment) {
      logger.warn(
        { previousDeviceId: enrollment.deviceId },
        'device key was missing: a new key was generated; enrolling as a new device',
      );
      state.clearEnrollment();
    }
    const enrolledWith = state.enrollment()?.serverUrl ?? null;
    if (config.serverUrl && enrolledWith && config.serverUrl !== enrolledWith) {
      logger.warn(
        { configured: config.serverUrl, enrolledWith },
        'the configured server differs from the one this device enrolled with; using the configured one',
      );
    }
    const serverUrl = config.serverUrl ?? enrolledWith;
    if (!config.offline && serverUrl === null) {
      throw new FlotillaError(
        'FLT_CONFIG_INVALID',
        'no server URL: pass --server or set FLOTILLA_SERVER_URL (or run with --offline)',
        {
          details: { problems: ['serverUrl: required to enroll'] },
        },
      );
    }
    if (!config.offline && state.enrollment() === null && readRegistrationKey(config) === null) {
      throw new FlotillaError(
        'FLT_CONFIG_INVALID',
        'this device is not enrolled and has no registration key: pass --registration-key-file or set FLOTILLA_REGISTRATION_KEY',
        { details: { problems: ['registrationKey: required to enroll'] } },
      );
    }
    return { db, state, identity, serverUrl: config.offline ? null : serverUrl };
  } catch (e) {
    db.close();
    throw e;
  }
}

/** The registration key from FLOTILLA_REGISTRATION_KEY or the key file (trimmed); null if neither is set. */
export function readRegistrationKey(config: AgentConfig): string | null {
  if (config.registrationKey !== null) return config.registrationKey;
  if (config.registrationKeyFile === null) return null;
  let text: string;
  try {
    text = readFileSync(config.registrationKeyFile, 'utf8');
  } catch (e) {
    throw new FlotillaError(
      'FLT_CONFIG_INVALID',
      `cannot read registration key file ${config.registrationKeyFile} (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      { details: { problems: [`registrationKeyFile: cannot read ${config.registrationKeyFile}`] }, cause: e },
    );
  }
  const key = text.trim();
  if (key.length < 8 || key.length > 256 || /\s/.test(key)) {
    throw new FlotillaError(
      'FLT_CONFIG_INVALID',
      `registration key file ${config.registrationKeyFile} does not hold a registration key`,
      {
        details: {
          problems: ['registrationKeyFile: must hold one key of 8 to 256 characters without spaces'],
        },
      },
    );
  }
  return key;
}
