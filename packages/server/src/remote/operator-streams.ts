/**
 * Streams operators hold open (tunnels, exec, followed logs), by user, so that revoking an operator
 * ends them at once: after a user is disabled, changed or deleted, or one of their API tokens is
 * revoked through this server, every stream of that user is closed (they reconnect with whatever
 * credentials still work). A check every few seconds also closes the streams of users disabled or
 * demoted elsewhere (another replica, the database).
 */
import { ROLE_RANK } from '@flotilla/protocol';
import type { Role } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';

/** How often open streams' users are checked against the database (ms). */
export const OPERATOR_RECHECK_MS = 5_000;

interface Held {
  role: Role;
  close: (reason: string) => void;
}

export class OperatorStreams {
  private readonly byUser = new Map<string, Set<Held>>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly ctx: ServerContext) {}

  /** Registers a stream needing `role`; returns its removal. */
  add(userId: string, role: Role, close: (reason: string) => void): () => void {
    const held: Held = { role, close };
    let set = this.byUser.get(userId);
    if (!set) this.byUser.set(userId, (set = new Set()));
    set.add(held);
    this.timer ??= setInterval(() => void this.recheck(), OPERATOR_RECHECK_MS);
    this.timer.unref();
    return () => {
      set.delete(held);
      if (set.size === 0) this.byUser.delete(userId);
      if (this.byUser.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    };
  }

  closeUser(userId: string, reason: string): void {
    for (const held of [...(this.byUser.get(userId) ?? [])]) held.close(reason);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const userId of [...this.byUser.keys()]) this.closeUser(userId, 'server shutting down');
  }

  /** Closes streams of users no longer allowed them (disabled, deleted, demoted). */
  async recheck(): Promise<void> {
    const ids = [...this.byUser.keys()];
    if (ids.length === 0) return;
    try {
      const rows = await this.ctx.db
        .selectFrom('users')
        .select(['id', 'role', 'disabled'])
        .where('id', 'in', ids)
        .execute();
      const users = new Map(rows.map((r) => [r.id, r]));
      for (const id of ids) {
        const user = users.get(id);
        for (const held of [...(this.byUser.get(id) ?? [])]) {
          if (!user || user.disabled !== 0 || ROLE_RANK[user.role] < ROLE_RANK[held.role])
            held.close('the operator is no longer allowed this stream');
        }
      }
    } catch (e) {
      this.ctx.log.warn({ err: e }, 'could not recheck operators of open streams');
    }
  }

  /**
   * Closes a user's streams after a request that revoked or changed them succeeded here: a token
   * revoked, a user changed or deleted.
   */
  install(app: FastifyInstance): void {
    app.addHook('onResponse', async (request, reply) => {
      if (reply.statusCode >= 300) return;
      const route = request.routeOptions.url;
      const params = request.params as { id?: unknown } | undefined;
      const id = typeof params?.id === 'string' ? params.id : null;
      if (id === null) return;
      if (route === '/api/v1/users/:id' && (request.method === 'PATCH' || request.method === 'DELETE')) {
        this.closeUser(id, 'the operator was changed or removed');
      } else if (route === '/api/v1/tokens/:id' && request.method === 'DELETE') {
        const row = await this.ctx.db
          .selectFrom('api_tokens')
          .select('user_id')
          .where('id', '=', id)
          .executeTakeFirst()
          .catch(() => undefined);
        if (row) this.closeUser(row.user_id, 'an API token of the operator was revoked');
      }
    });
  }
}
