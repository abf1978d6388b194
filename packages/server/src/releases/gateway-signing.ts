/**
 * Releases signed by the server's online `gateway` role: the image repository's delegated targets
 * role that the offline targets key may delegate some apps to (`flotilla keys delegate-gateway`).
 * The image gateway's `fleet` platforms sign their images' release trees this way; an admin may too
 * (`POST /api/v1/releases/:app/:version/gateway-signature`). A release of an app not delegated is
 * refused with FLT_TUF_NOT_DELEGATED, and the agent (tuf-js) would refuse it anyway: it consults
 * `gateway.json` only for paths the offline-signed delegation covers.
 */
import { releaseTarget } from '@flotilla/node-kit';
import { FlotillaError } from '@flotilla/protocol';
import type { GatewaySignatureResponse } from '@flotilla/protocol';
import type { ServerContext } from '../context.js';
import { getRelease, refreshSigned, targetCustom } from './service.js';
import type { Creator, ReleaseServices } from './service.js';

async function targetOf(ctx: ServerContext, app: string, version: string) {
  const release = await getRelease(ctx.db, app, version);
  const row = await ctx.db
    .selectFrom('releases')
    .select('root_length')
    .where('app', '=', app)
    .where('version', '=', version)
    .executeTakeFirstOrThrow();
  const commitments = Object.fromEntries((release.secrets ?? []).map((s) => [s.name, s.commitment]));
  return { release, target: releaseTarget(targetCustom({ ...release, commitments }), row.root_length) };
}

/** Signs `app@version` into `gateway.json`; audited as `tuf.gateway.sign`. */
export async function signWithGatewayRole(
  svc: ReleaseServices,
  app: string,
  version: string,
  actor: Creator,
): Promise<GatewaySignatureResponse> {
  const { ctx } = svc;
  const { release, target } = await targetOf(ctx, app, version);
  let published: { gateway?: number };
  try {
    published = await svc.trust.image.signGatewayTarget(target);
  } catch (error) {
    await auditGateway(ctx, actor, 'tuf.gateway.refused', app, version, {
      targetPath: release.targetPath,
      code: error instanceof FlotillaError ? error.code : 'FLT_INTERNAL',
    });
    throw error;
  }
  await refreshSigned(ctx, svc.trust.image);
  await auditGateway(ctx, actor, 'tuf.gateway.sign', app, version, {
    targetPath: release.targetPath,
    gatewayVersion: published.gateway ?? null,
  });
  return signatureResponse(ctx, app, version, release.targetPath, published.gateway);
}

/**
 * Withdraws `app@version` from `gateway.json` (an expired gateway image); audited as
 * `tuf.gateway.remove`. Devices can no longer verify it: deploy something else to the devices
 * assigned it first (the gateway does).
 */
export async function withdrawGatewaySignature(
  svc: ReleaseServices,
  app: string,
  version: string,
  actor: Creator,
): Promise<GatewaySignatureResponse> {
  const { ctx } = svc;
  const release = await getRelease(ctx.db, app, version);
  const published = await svc.trust.image.removeGatewayTarget(release.targetPath);
  await refreshSigned(ctx, svc.trust.image);
  if (published.gateway !== undefined)
    await auditGateway(ctx, actor, 'tuf.gateway.remove', app, version, {
      targetPath: release.targetPath,
      gatewayVersion: published.gateway,
    });
  return signatureResponse(ctx, app, version, release.targetPath, published.gateway);
}

/** What the signature routes answer: the release's signed flag as it is now. */
async function signatureResponse(
  ctx: ReleaseServices['ctx'],
  app: string,
  version: string,
  targetPath: string,
  gatewayVersion: number | undefined,
): Promise<GatewaySignatureResponse> {
  const after = await getRelease(ctx.db, app, version);
  return { app, version, targetPath, signed: after.signed, gatewayVersion: gatewayVersion ?? null };
}

/** An operator's gateway-role action on `app@version`, in the audit log. */
async function auditGateway(
  ctx: ReleaseServices['ctx'],
  actor: Creator,
  action: 'tuf.gateway.sign' | 'tuf.gateway.refused' | 'tuf.gateway.remove',
  app: string,
  version: string,
  details: Record<string, unknown>,
): Promise<void> {
  await ctx.audit.record({
    actorType: 'user',
    actorId: actor.userId,
    action,
    subjectType: 'release',
    subjectId: `${app}@${version}`,
    sourceIp: actor.sourceIp,
    details,
  });
}
