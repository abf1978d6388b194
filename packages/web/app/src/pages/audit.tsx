import { useState } from 'react';
import type { FormEvent } from 'react';
import { useInfiniteQuery } from '@tanstack/react-query';
import type { AuditList } from '@flotilla/protocol';
import { get } from '../api.js';
import { useSession } from '../auth.js';
import { ErrorNote, Section, Time } from '../ui.js';

interface Filters {
  actor: string;
  action: string;
  subjectType: string;
  subjectId: string;
  since: string;
  until: string;
}
const EMPTY: Filters = { actor: '', action: '', subjectType: '', subjectId: '', since: '', until: '' };

const iso = (local: string) => (local ? new Date(local).toISOString() : undefined);

export function AuditPage() {
  const session = useSession();
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const audit = useInfiniteQuery({
    queryKey: ['audit', filters],
    enabled: session.can('admin'),
    initialPageParam: undefined as number | undefined,
    queryFn: ({ pageParam }) =>
      get<AuditList>('/api/v1/audit', {
        actor: filters.actor,
        action: filters.action,
        subjectType: filters.subjectType,
        subjectId: filters.subjectId,
        since: iso(filters.since),
        until: iso(filters.until),
        limit: 50,
        before: pageParam,
      }),
    getNextPageParam: (last) => last.nextBefore ?? undefined,
  });
  if (!session.can('admin'))
    return (
      <>
        <h1>Audit log</h1>
        <p className="note">Only admins read the audit log.</p>
      </>
    );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setFilters(draft);
  };
  const field = (k: keyof Filters, label: string, type = 'text', placeholder = '') => (
    <label>
      {label}{' '}
      <input
        type={type}
        name={k}
        value={draft[k]}
        placeholder={placeholder}
        onChange={(e) => setDraft({ ...draft, [k]: e.target.value })}
      />
    </label>
  );
  const items = audit.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <>
      <h1>Audit log</h1>
      <Section title="Filters">
        <form className="inline" onSubmit={submit}>
          {field('actor', 'Actor', 'text', 'user id or name')}
          {field('action', 'Action', 'text', 'device.*')}
          {field('subjectType', 'Subject type', 'text', 'device')}
          {field('subjectId', 'Subject id')}
          {field('since', 'Since', 'datetime-local')}
          {field('until', 'Until', 'datetime-local')}
          <button type="submit" className="primary">
            Apply
          </button>
          <button
            type="button"
            onClick={() => {
              setDraft(EMPTY);
              setFilters(EMPTY);
            }}
          >
            Clear
          </button>
        </form>
      </Section>
      <Section title="Entries">
        {audit.isError ? <ErrorNote error={audit.error} /> : null}
        <div className="table-wrap" tabIndex={0}>
          <table className="data">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Actor</th>
                <th scope="col">Action</th>
                <th scope="col">Subject</th>
                <th scope="col">Source</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {items.map((e) => (
                <tr key={e.id}>
                  <td data-label="When">
                    <Time at={e.at} />
                  </td>
                  <td data-label="Actor">
                    {e.actorType}:{e.actorId}
                  </td>
                  <td data-label="Action">
                    <code>{e.action}</code>
                  </td>
                  <td data-label="Subject">
                    {e.subjectType}:{e.subjectId}
                  </td>
                  <td data-label="Source">{e.sourceIp ?? '—'}</td>
                  <td data-label="Details">
                    {e.details ? <code className="small">{JSON.stringify(e.details)}</code> : '—'}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        {audit.isPending ? (
          <p className="muted">Loading…</p>
        ) : items.length === 0 ? (
          <p className="muted">No entry matches.</p>
        ) : null}
        {audit.hasNextPage ? (
          <button
            type="button"
            onClick={() => void audit.fetchNextPage()}
            disabled={audit.isFetchingNextPage}
          >
            Older entries
          </button>
        ) : null}
      </Section>
    </>
  );
}
