/**
 * Every migration, in order. Forward-only: a released migration is never edited; a change to the
 * schema is a new numbered file added here. Each migration is `up(db, dialect)`.
 */
import type { Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';
import * as m001 from './001_foundation.js';
import * as m002 from './002_releases.js';
import * as m003 from './003_release_secrets.js';
import * as m004 from './004_device_app_previous.js';
import * as m005 from './005_app_process_status.js';
import * as m006 from './006_director_pending.js';
import * as m007 from './007_gateway_images.js';
import * as m008 from './008_events.js';
import * as m009 from './009_rollouts.js';
import * as m012 from './012_deployment_jobs.js';
import * as m013 from './013_rollout_counts.js';

export interface NumberedMigration {
  up(db: Kysely<unknown>, dialect: Dialect): Promise<void>;
}

export const MIGRATIONS: Readonly<Record<string, NumberedMigration>> = {
  '001_foundation': m001,
  '002_releases': m002,
  '003_release_secrets': m003,
  '004_device_app_previous': m004,
  '005_app_process_status': m005,
  '006_director_pending': m006,
  '007_gateway_images': m007,
  '008_events': m008,
  '009_rollouts': m009,
  '012_deployment_jobs': m012,
  '013_rollout_counts': m013,
};
