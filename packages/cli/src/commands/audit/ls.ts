import type { Command } from 'commander';
import type { AuditEntry } from '@flotilla/protocol';
import { LIMITS } from '@flotilla/protocol';
import { listAudit } from '../../api/operator.js';
import { pageLimitArg, positiveIntArg, timeArg } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';

interface AuditOptions {
  actor?: string;
  action?: string;
  subjectType?: string;
  subjectId?: string;
  since?: string;
  until?: string;
  limit?: number;
  before?: number;
}

function row(entry: AuditEntry): string[] {
  return [
    String(entry.id),
    entry.at,
    `${entry.actorType}:${entry.actorId}`,
    entry.action,
    `${entry.subjectType}:${entry.subjectId}`,
    entry.sourceIp ?? '-',
  ];
}

export function registerAuditList(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('ls')
    .description('list audit log entries, newest first')
    .option('--actor <id>', 'only entries by this actor (user or device id)')
    .option('--action <action>', 'exact action, or a prefix ending in * (device.*)')
    .option('--subject-type <type>', 'only entries about this kind of subject (device, regkey, user, token)')
    .option('--subject-id <id>', 'only entries about this subject')
    .option('--since <time>', 'from this time (RFC 3339) or this long ago (2h, 7d)', timeArg)
    .option('--until <time>', 'up to this time (RFC 3339) or this long ago', timeArg)
    .option(
      '--limit <n>',
      `entries per page, 1-${LIMITS.pageSizeMax} (default ${LIMITS.pageSizeDefault})`,
      pageLimitArg,
    )
    .option('--before <id>', 'cursor: entries older than this id (the next page)', positiveIntArg)
    .action(async (opts: AuditOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const res = await listAudit(await ctx.client(), {
        actor: opts.actor,
        action: opts.action,
        subjectType: opts.subjectType,
        subjectId: opts.subjectId,
        since: opts.since,
        until: opts.until,
        limit: opts.limit,
        before: opts.before,
      });
      ctx.out.result(res, () => {
        ctx.out.table(
          ['id', 'at', 'actor', 'action', 'subject', 'source'],
          res.items.map(row),
          'no audit entries',
        );
        if (res.nextBefore !== null) ctx.out.note(`older entries: --before ${res.nextBefore}`);
      });
    });
  examples(cmd, [
    'flotilla audit ls --since 24h',
    'flotilla audit ls --action "device.*" --subject-id 3f2a9c0d1e4b5a6f7e8d9c0b1a2f3e4d',
    'flotilla audit ls --limit 100 --before 5120 --json',
  ]);
}
