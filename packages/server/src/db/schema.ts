/**
 * The control plane's tables as Kysely sees them. Portable across SQLite and PostgreSQL:
 * timestamps are ISO-8601 UTC text (`Date.toISOString()`, lexically ordered), booleans are
 * integers 0/1, JSON is text. Changing a table means a new numbered migration, never an edit.
 */
import type { Generated, Kysely, Transaction } from 'kysely';

export interface UsersTable {
  id: string;
  username: string;
  password_hash: string;
  role: 'admin' | 'deployer' | 'viewer';
  disabled: number;
  created_at: string;
}

export interface SessionsTable {
  /** SHA-256 of the session cookie's secret. */
  token_hash: string;
  user_id: string;
  created_at: string;
  expires_at: string;
  source_ip: string | null;
}

export interface ApiTokensTable {
  id: string;
  user_id: string;
  name: string;
  token_hash: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface RegistrationKeysTable {
  id: string;
  name: string;
  secret_hash: string;
  /** JSON array of default tags given to devices that enroll with this key. */
  tags: string;
  max_uses: number | null;
  uses: number;
  auto_accept: number;
  expires_at: string | null;
  revoked_at: string | null;
  created_at: string;
  created_by: string;
}

export interface DevicesTable {
  id: string;
  public_key: string;
  status: 'pending' | 'accepted' | 'rejected' | 'revoked';
  hostname: string | null;
  registration_key_id: string | null;
  enrolled_at: string;
  status_changed_at: string;
  status_reason: string | null;
  last_seen_at: string | null;
  agent_version: string | null;
  /** Incremented on every change of the desired state; the state poll's ETag. */
  state_version: number;
  /** The state version whose assignments the director has yet to sign (null: signed). */
  director_pending: number | null;
}

/** A deployment's assignment job (migration 012): batches advance `last_device_id` over its selected devices. */
export interface DeploymentJobsTable {
  id: string;
  app: string;
  version: string;
  target_path: string;
  state: 'running' | 'complete' | 'failed';
  total: number;
  assigned: number;
  processed: number;
  /** The last device id whose batch committed (null: none yet). */
  last_device_id: string | null;
  /** JSON `{ code, message }` when the job failed. */
  error: string | null;
  actor_id: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

export interface DeploymentJobDevicesTable {
  job_id: string;
  device_id: string;
}

export interface DeviceTagsTable {
  device_id: string;
  tag: string;
}

/**
 * One row per fact value (a list fact has one row per item, `ordinal` 0..n-1), so that RSQL
 * filters translate to indexed EXISTS subqueries on both dialects.
 */
export interface DeviceFactsTable {
  device_id: string;
  name: string;
  ordinal: number;
  value_type: 'string' | 'number' | 'boolean' | 'list';
  value_text: string;
  value_num: number | null;
}

export interface DeviceNoncesTable {
  /** SHA-256 of the nonce. */
  nonce_hash: string;
  purpose: 'enroll' | 'token';
  device_id: string | null;
  created_at: string;
  expires_at: string;
}

export interface DeviceTokensTable {
  token_hash: string;
  device_id: string;
  created_at: string;
  expires_at: string;
}

export interface AuditLogTable {
  id: Generated<number>;
  at: string;
  actor_type: 'user' | 'device' | 'system';
  actor_id: string;
  action: string;
  subject_type: string;
  subject_id: string;
  source_ip: string | null;
  /** JSON object or null. */
  details: string | null;
}

export interface ReleasesTable {
  app: string;
  version: string;
  runtime: 'files' | 'process' | 'docker' | 'lxc';
  root_object: string;
  /** Bytes of the root directory object (the TUF target's length). */
  root_length: number;
  /** JSON object. */
  config: string;
  target_path: string;
  files: number;
  bytes: number | string;
  stored_bytes: number | string;
  signed: number;
  created_at: string;
  created_by: string;
  /** JSON object: secret name → offline-signed commitment (SHA-256 hex). Migration 003. */
  secrets: Generated<string>;
}

/** A secret's value and nonce, encrypted with the server's secrets key (docs/security.md). */
export interface ReleaseSecretsTable {
  app: string;
  version: string;
  name: string;
  /** base64url(iv || tag || AES-256-GCM ciphertext of JSON `{ value, nonce }`). */
  ciphertext: string;
  created_at: string;
  created_by: string;
}

/** One row per object (chunk, file or directory object) a release's tree references. */
export interface ObjectRefsTable {
  app: string;
  version: string;
  object_id: string;
}

/** What a device should run and is doing, per app. */
export interface DeviceAppsTable {
  device_id: string;
  app: string;
  /** Target path assigned, or null. */
  desired: string | null;
  rollout: string | null;
  /** Target path the app runs as the device last reported (commit, rollback, status), or null. */
  current: string | null;
  /** Target path committed before `current` (the device may roll back to it), or null. */
  previous: string | null;
  phase: string | null;
  bytes_done: number | string | null;
  bytes_total: number | string | null;
  bytes_fetched: number | string | null;
  /** JSON `{ code, message }` or null. */
  error: string | null;
  /** JSON AppProcessStatus of the running release (migration 003), or null. */
  process_status: string | null;
  updated_at: string;
}

/** A staged rollout (migration 009, docs/rollouts.md). */
export interface RolloutsTable {
  id: string;
  app: string;
  version: string;
  target_path: string;
  filter: string;
  /** JSON array of wave specs (`10%`, `50`). */
  waves: string;
  /** JSON array of wave sizes, fixed at creation. */
  wave_sizes: string;
  min_success: number;
  max_failure: number;
  soak_seconds: number;
  approve_waves: number;
  window: string | null;
  include_new: number;
  retry: number;
  state: 'running' | 'paused' | 'waiting-approval' | 'completed' | 'aborted';
  current_wave: number;
  /** The highest wave index an operator approved (-1: none). */
  approved_wave: number;
  matched: number;
  paused_reason: string | null;
  created_at: string;
  created_by: string;
  updated_at: string;
  /**
   * JSON `{ waves: WaveCounts[], acknowledged: number[] }`: devices per wave and phase, and the
   * failed ones an operator resumed past, kept with every change of phase (migration 013; null:
   * not kept yet, counted from the devices).
   */
  counts: string | null;
}

/** One device of a rollout (migration 009). */
export interface RolloutDevicesTable {
  rollout_id: string;
  device_id: string;
  app: string;
  wave: number;
  phase: string;
  reason: string | null;
  /** JSON `{ message?, logTail? }` about a failure, or null. */
  detail: string | null;
  since: string;
  retries: number;
  next_attempt_at: string | null;
  assigned_at: string | null;
  committed_at: string | null;
  soak_until: string | null;
  soak_restarts: number | null;
  install_ms: number | null;
  /** 1 while the rollout is active (one active rollout per device and app). */
  active: number;
  /** 1: a failure an operator resumed past (it no longer counts against the failure threshold). */
  acknowledged: Generated<number>;
}

/** One entry of the event log (migration 008); `event_outbox` rows have the same columns keyed by `id`. */
export interface EventsTable {
  seq: Generated<number | string>;
  type: string;
  at: string;
  device_id: string | null;
  app: string | null;
  rollout: string | null;
  /** JSON object: the event without the columns above. */
  payload: string;
}

export interface EventOutboxTable extends Omit<EventsTable, 'seq'> {
  id: Generated<number | string>;
}

export interface Database {
  users: UsersTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  registration_keys: RegistrationKeysTable;
  devices: DevicesTable;
  device_tags: DeviceTagsTable;
  device_facts: DeviceFactsTable;
  device_nonces: DeviceNoncesTable;
  device_tokens: DeviceTokensTable;
  audit_log: AuditLogTable;
  releases: ReleasesTable;
  object_refs: ObjectRefsTable;
  release_secrets: ReleaseSecretsTable;
  device_apps: DeviceAppsTable;
  rollouts: RolloutsTable;
  rollout_devices: RolloutDevicesTable;
  deployment_jobs: DeploymentJobsTable;
  deployment_job_devices: DeploymentJobDevicesTable;
  events: EventsTable;
  event_outbox: EventOutboxTable;
}

/** The database or a transaction on it: what a query runs against. */
export type Db = Kysely<Database> | Transaction<Database>;
