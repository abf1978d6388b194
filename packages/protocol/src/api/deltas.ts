/**
 * Precomputing file deltas between two releases (the server side of `ObjectRoutes.deltas`), like
 * `ostree static-delta generate`: every file whose object differs between the two releases at the
 * same path gets its delta computed and cached, so devices updating from `from` get them at once.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { AppName, ReleaseVersion } from '../tuf/target.js';

/** `POST` (deployer, audited): precompute the deltas from release `from` to `:app/:version`. */
export const RELEASE_DELTAS_ROUTE = '/api/v1/releases/:app/:version/deltas';

export const PrecomputeDeltasRequest = Type.Object(
  { from: ReleaseVersion },
  { additionalProperties: false, description: 'The release devices update from (same app)' },
);
export type PrecomputeDeltasRequest = Static<typeof PrecomputeDeltasRequest>;

export const PrecomputeDeltasResponse = Type.Object({
  app: AppName,
  from: ReleaseVersion,
  to: ReleaseVersion,
  files: Type.Integer({
    minimum: 0,
    description: 'Files present in both releases at the same path whose object differs',
  }),
  deltas: Type.Integer({
    minimum: 0,
    description: 'Of those, files answered with a zstd delta (the others: fetch their chunks)',
  }),
  deltaBytes: Type.Integer({
    minimum: 0,
    description:
      'Bytes a device on `from` fetches for those files with deltas: delta payloads, plus the ' +
      'compressed chunks of files without a delta',
  }),
  plainBytes: Type.Integer({
    minimum: 0,
    description: 'Bytes it would fetch as compressed chunks instead (target chunks the base file lacks)',
  }),
  ms: Type.Integer({ minimum: 0, description: 'Wall time of the precomputation' }),
});
export type PrecomputeDeltasResponse = Static<typeof PrecomputeDeltasResponse>;
