/** Periodic removal of expired nonces and device tokens (timer unref'd, stopped on close). */
import type { ServerContext } from '../context.js';

/** How often expired rows are removed (ms). */
export const CLEANUP_INTERVAL_MS = 60_000;

export async function removeExpired(ctx: ServerContext): Promise<{ nonces: number; tokens: number }> {
  const now = ctx.clock.now().toISOString();
  const nonces = await ctx.db.deleteFrom('device_nonces').where('expires_at', '<=', now).executeTakeFirst();
  const tokens = await ctx.db.deleteFrom('device_tokens').where('expires_at', '<=', now).executeTakeFirst();
  return { nonces: Number(nonces.numDeletedRows), tokens: Number(tokens.numDeletedRows) };
}

export interface Cleaner {
  stop(): Promise<void>;
}

export function startCleaner(ctx: ServerContext, intervalMs = CLEANUP_INTERVAL_MS): Cleaner {
  let running: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    ctx.limits.liveChallenges.prune(ctx.clock.now().getTime());
    running = removeExpired(ctx).then(
      (removed) => ctx.log.debug(removed, 'removed expired device nonces and tokens'),
      (e: unknown) => ctx.log.warn({ err: e }, 'could not remove expired device nonces and tokens'),
    );
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
