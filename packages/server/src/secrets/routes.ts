/** Release secret routes: upload (deployer) and reveal (admin, audited). No route lists values. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  AppName,
  PutSecretsRequest,
  PutSecretsResponse,
  ReleaseRoutes,
  ReleaseVersion,
  RevealSecretResponse,
  SecretName,
  Type,
} from '@flotilla/protocol';
import type { ServerContext } from '../context.js';
import { requireRole } from '../http/auth.js';
import { namedActorOf } from '../http/route-helpers.js';
import { putSecrets, revealSecret } from './service.js';
import type { SecretVault } from './vault.js';

const ReleaseParams = Type.Object({ app: AppName, version: ReleaseVersion }, { additionalProperties: false });
const SecretParams = Type.Object(
  { app: AppName, version: ReleaseVersion, name: SecretName },
  { additionalProperties: false },
);

export function registerSecretRoutes(base: FastifyInstance, ctx: ServerContext, vault: SecretVault): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['releases'];

  app.put(
    ReleaseRoutes.secrets,
    {
      schema: {
        summary:
          "Store values of a release's committed secrets (checked against the signed commitments, encrypted at rest)",
        tags,
        params: ReleaseParams,
        body: PutSecretsRequest,
        response: { 200: PutSecretsResponse },
      },
      preHandler: requireRole('deployer'),
    },
    async (request) =>
      putSecrets(
        ctx,
        vault,
        request.params.app,
        request.params.version,
        request.body.secrets,
        namedActorOf(request),
      ),
  );

  app.post(
    ReleaseRoutes.secretReveal,
    {
      schema: {
        summary: "Reveal one secret's value (admin only; every reveal is audited)",
        tags,
        params: SecretParams,
        response: { 200: RevealSecretResponse },
      },
      preHandler: requireRole('admin'),
    },
    async (request, reply) => {
      const { app: appName, version, name } = request.params;
      const value = await revealSecret(ctx, vault, appName, version, name, namedActorOf(request));
      void reply.header('cache-control', 'no-store');
      return { app: appName, version, name, value };
    },
  );
}
