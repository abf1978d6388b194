import { useMemo, useState } from 'react';
import type { FormEvent } from 'react';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { flexRender, getCoreRowModel, useReactTable } from '@tanstack/react-table';
import type { ColumnDef, RowSelectionState, SortingState } from '@tanstack/react-table';
import { Link } from 'wouter';
import type { Device, DeviceList, DeployResponse } from '@flotilla/protocol';
import { errorText, get, path, post } from '../api.js';
import { RequireRole } from '../auth.js';
import { buildRsql, idFilter, OPERATORS, SELECTORS } from '../rsql.js';
import type { Condition } from '../rsql.js';
import { Badge, ErrorNote, Section, Time } from '../ui.js';

const PAGE_SIZES = [25, 50, 100, 200];
const SORTABLE = new Set(['id', 'status', 'hostname', 'lastSeenAt', 'enrolledAt']);

export function statusTone(status: string): 'ok' | 'warn' | 'bad' | 'muted' {
  return status === 'accepted'
    ? 'ok'
    : status === 'pending'
      ? 'warn'
      : status === 'rejected' || status === 'revoked'
        ? 'bad'
        : 'muted';
}

const columns: ColumnDef<Device>[] = [
  {
    id: 'select',
    header: ({ table }) => (
      <input
        type="checkbox"
        aria-label="Select every device on this page"
        checked={table.getIsAllPageRowsSelected()}
        onChange={table.getToggleAllPageRowsSelectedHandler()}
      />
    ),
    cell: ({ row }) => (
      <input
        type="checkbox"
        aria-label={`Select ${row.original.hostname ?? row.original.id}`}
        checked={row.getIsSelected()}
        onChange={row.getToggleSelectedHandler()}
      />
    ),
    enableSorting: false,
  },
  {
    id: 'hostname',
    header: 'Hostname',
    accessorFn: (d) => d.hostname ?? '',
    cell: ({ row }) => (
      <Link href={`/devices/${encodeURIComponent(row.original.id)}`}>
        {row.original.hostname ?? row.original.id}
      </Link>
    ),
  },
  {
    id: 'id',
    header: 'Id',
    accessorKey: 'id',
    cell: ({ getValue }) => <code className="id">{String(getValue())}</code>,
  },
  {
    id: 'status',
    header: 'Status',
    accessorKey: 'status',
    cell: ({ getValue }) => <Badge tone={statusTone(String(getValue()))}>{String(getValue())}</Badge>,
  },
  {
    id: 'online',
    header: 'Online',
    accessorKey: 'online',
    enableSorting: false,
    cell: ({ getValue }) => (getValue() ? <Badge tone="ok">online</Badge> : <Badge>offline</Badge>),
  },
  {
    id: 'tags',
    header: 'Tags',
    accessorFn: (d) => d.tags.join(' '),
    enableSorting: false,
    cell: ({ row }) => (
      <span className="tags">
        {row.original.tags.map((t) => (
          <Badge key={t} tone="info">
            {t}
          </Badge>
        ))}
      </span>
    ),
  },
  {
    id: 'lastSeenAt',
    header: 'Last seen',
    accessorKey: 'lastSeenAt',
    cell: ({ row }) => <Time at={row.original.lastSeenAt} />,
  },
  {
    id: 'enrolledAt',
    header: 'Enrolled',
    accessorKey: 'enrolledAt',
    cell: ({ row }) => <Time at={row.original.enrolledAt} />,
  },
];

export function DevicesPage() {
  const client = useQueryClient();
  const [filterText, setFilterText] = useState('');
  const [filter, setFilter] = useState('');
  const [sorting, setSorting] = useState<SortingState>([{ id: 'enrolledAt', desc: false }]);
  const [pageSize, setPageSize] = useState(50);
  const [offset, setOffset] = useState(0);
  const [selection, setSelection] = useState<RowSelectionState>({});
  const sort = sorting.map((s) => `${s.desc ? '-' : ''}${s.id}`).join(',');
  const list = useQuery({
    queryKey: ['devices', { filter, sort, pageSize, offset }],
    queryFn: () => get<DeviceList>('/api/v1/devices', { filter, sort, limit: pageSize, offset }),
    placeholderData: keepPreviousData,
  });
  const data = useMemo(() => list.data?.items ?? [], [list.data]);
  const table = useReactTable({
    data,
    columns,
    getCoreRowModel: getCoreRowModel(),
    getRowId: (d) => d.id,
    manualSorting: true,
    manualPagination: true,
    enableSortingRemoval: false,
    state: { sorting, rowSelection: selection },
    onSortingChange: (u) => {
      setSorting(u);
      setOffset(0);
    },
    onRowSelectionChange: setSelection,
  });
  const apply = (text: string) => {
    setFilterText(text);
    setFilter(text.trim());
    setOffset(0);
    setSelection({});
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    apply(filterText);
  };
  const selected = Object.keys(selection).filter((k) => selection[k]);
  const total = list.data?.total ?? 0;
  return (
    <>
      <h1>Devices</h1>
      <Section title="Filter">
        <form className="filter-box" onSubmit={submit} role="search">
          <label htmlFor="rsql">RSQL filter</label>
          <input
            id="rsql"
            name="filter"
            className="mono"
            placeholder="e.g. status==accepted;tags==canary;arch=in=(arm64,amd64)"
            value={filterText}
            onChange={(e) => setFilterText(e.target.value)}
            spellCheck={false}
            aria-describedby="rsql-help"
          />
          <button type="submit" className="primary">
            Apply
          </button>
          <button type="button" onClick={() => apply('')}>
            Clear
          </button>
        </form>
        <p id="rsql-help" className="muted small">
          Operators <code>==</code> <code>!=</code> <code>=in=(a,b)</code> <code>=out=</code>{' '}
          <code>=lt=</code> <code>=gt=</code>; <code>;</code> is and, <code>,</code> is or; <code>*</code> is
          a wildcard. Or build one:
        </p>
        <FilterBuilder onApply={apply} />
      </Section>
      <Section
        title={`${total} device${total === 1 ? '' : 's'}`}
        actions={
          <RequireRole role="deployer">
            <BulkActions
              ids={selected}
              onDone={() => {
                setSelection({});
                void client.invalidateQueries({ queryKey: ['devices'] });
              }}
            />
          </RequireRole>
        }
      >
        {list.isError ? <ErrorNote error={list.error} /> : null}
        <div className="table-wrap" tabIndex={0}>
          <table className="data" aria-busy={list.isFetching}>
            <caption className="sr-only">Devices, sorted by {sort || 'enrollment'}</caption>
            <thead>
              {table.getHeaderGroups().map((hg) => (
                <tr key={hg.id}>
                  {hg.headers.map((h) => {
                    const sortable = SORTABLE.has(h.column.id);
                    const dir = h.column.getIsSorted();
                    return (
                      <th
                        key={h.id}
                        scope="col"
                        aria-sort={dir === 'asc' ? 'ascending' : dir === 'desc' ? 'descending' : undefined}
                      >
                        {sortable ? (
                          <button type="button" className="link" onClick={h.column.getToggleSortingHandler()}>
                            {flexRender(h.column.columnDef.header, h.getContext())}
                            <span aria-hidden="true">
                              {dir === 'asc' ? ' ▲' : dir === 'desc' ? ' ▼' : ''}
                            </span>
                          </button>
                        ) : (
                          flexRender(h.column.columnDef.header, h.getContext())
                        )}
                      </th>
                    );
                  })}
                </tr>
              ))}
            </thead>
            <tbody>
              {table.getRowModel().rows.map((row) => (
                <tr key={row.id} aria-selected={row.getIsSelected()}>
                  {row.getVisibleCells().map((cell) => (
                    <td
                      key={cell.id}
                      data-label={
                        typeof cell.column.columnDef.header === 'string' ? cell.column.columnDef.header : ''
                      }
                    >
                      {flexRender(cell.column.columnDef.cell, cell.getContext())}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        {list.isPending ? (
          <p className="muted">Loading…</p>
        ) : data.length === 0 ? (
          <p className="muted">No device matches.</p>
        ) : null}
        <nav className="pager" aria-label="Pages">
          <button
            type="button"
            disabled={offset === 0}
            onClick={() => setOffset(Math.max(0, offset - pageSize))}
          >
            Previous
          </button>
          <span>
            {total === 0 ? 0 : offset + 1}–{Math.min(offset + pageSize, total)} of {total}
          </span>
          <button
            type="button"
            disabled={offset + pageSize >= total}
            onClick={() => setOffset(offset + pageSize)}
          >
            Next
          </button>
          <label>
            Per page{' '}
            <select
              value={pageSize}
              onChange={(e) => {
                setPageSize(Number(e.target.value));
                setOffset(0);
              }}
            >
              {PAGE_SIZES.map((n) => (
                <option key={n}>{n}</option>
              ))}
            </select>
          </label>
        </nav>
      </Section>
    </>
  );
}

function FilterBuilder({ onApply }: { onApply: (rsql: string) => void }) {
  const [rows, setRows] = useState<Condition[]>([{ selector: 'status', op: '==', value: 'accepted' }]);
  const [join, setJoin] = useState<'all' | 'any'>('all');
  const update = (i: number, patch: Partial<Condition>) =>
    setRows(rows.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  const rsql = buildRsql(rows, join);
  return (
    <fieldset className="builder">
      <legend>Filter builder</legend>
      <label>
        Match{' '}
        <select value={join} onChange={(e) => setJoin(e.target.value as 'all' | 'any')}>
          <option value="all">all conditions</option>
          <option value="any">any condition</option>
        </select>
      </label>
      {rows.map((r, i) => {
        const known = SELECTORS.find((s) => s.value === r.selector);
        return (
          <div className="builder-row" key={i}>
            <label>
              <span className="sr-only">Field {i + 1}</span>
              <input
                list="selectors"
                value={r.selector}
                onChange={(e) => update(i, { selector: e.target.value })}
                aria-label={`Field of condition ${i + 1}`}
              />
            </label>
            <select
              value={r.op}
              onChange={(e) => update(i, { op: e.target.value })}
              aria-label={`Operator of condition ${i + 1}`}
            >
              {OPERATORS.map((o) => (
                <option key={o.value} value={o.value}>
                  {o.label}
                </option>
              ))}
            </select>
            {known?.values && (r.op === '==' || r.op === '!=') ? (
              <select
                value={r.value}
                onChange={(e) => update(i, { value: e.target.value })}
                aria-label={`Value of condition ${i + 1}`}
              >
                <option value="">choose…</option>
                {known.values.map((v) => (
                  <option key={v}>{v}</option>
                ))}
              </select>
            ) : (
              <input
                value={r.value}
                onChange={(e) => update(i, { value: e.target.value })}
                aria-label={`Value of condition ${i + 1}`}
                placeholder={r.op === '=in=' || r.op === '=out=' ? 'a, b, c' : 'value'}
              />
            )}
            <button
              type="button"
              onClick={() => setRows(rows.filter((_, j) => j !== i))}
              aria-label={`Remove condition ${i + 1}`}
            >
              Remove
            </button>
          </div>
        );
      })}
      <datalist id="selectors">
        {SELECTORS.map((s) => (
          <option key={s.value} value={s.value}>
            {s.label}
          </option>
        ))}
      </datalist>
      <div className="builder-foot">
        <button type="button" onClick={() => setRows([...rows, { selector: 'tags', op: '==', value: '' }])}>
          Add condition
        </button>
        <code aria-label="Filter built" className="mono">
          {rsql || '(no condition)'}
        </code>
        <button type="button" className="primary" onClick={() => onApply(rsql)}>
          Use this filter
        </button>
      </div>
    </fieldset>
  );
}

function BulkActions({ ids, onDone }: { ids: string[]; onDone: () => void }) {
  const [tag, setTag] = useState('');
  const [release, setRelease] = useState('');
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const none = ids.length === 0;
  const each = async (what: string, fn: (id: string) => Promise<unknown>) => {
    setMessage(null);
    setError(null);
    const failed: string[] = [];
    for (const id of ids) {
      try {
        await fn(id);
      } catch (e) {
        failed.push(`${id}: ${errorText(e)}`);
      }
    }
    if (failed.length)
      setError(`${what}: ${failed.length} of ${ids.length} failed — ${failed.slice(0, 3).join('; ')}`);
    else setMessage(`${what}: done for ${ids.length} device${ids.length === 1 ? '' : 's'}`);
    onDone();
  };
  const deploy = async () => {
    const [app, version] = release.split('@');
    if (!app || !version) {
      setError('deploy: write the release as app@version');
      return;
    }
    try {
      const r = await post<DeployResponse>('/api/v1/deployments', { app, version, filter: idFilter(ids) });
      setMessage(`deploy: ${app} ${version} assigned to ${r.devices.length} devices`);
      setError(null);
      onDone();
    } catch (e) {
      setError(`deploy: ${errorText(e)}`);
    }
  };
  return (
    <div className="bulk" role="group" aria-label="Bulk actions on the selected devices">
      <span className="muted">{ids.length} selected</span>
      <button
        type="button"
        disabled={none}
        onClick={() => void each('accept', (id) => post(path('/api/v1/devices/:id/accept', { id })))}
      >
        Accept
      </button>
      <button
        type="button"
        disabled={none}
        onClick={() => void each('reject', (id) => post(path('/api/v1/devices/:id/reject', { id })))}
      >
        Reject
      </button>
      <input
        aria-label="Tag for the selected devices"
        placeholder="tag"
        value={tag}
        onChange={(e) => setTag(e.target.value)}
        size={10}
      />
      <button
        type="button"
        disabled={none || !tag}
        onClick={() =>
          void each('tag', (id) => post(path('/api/v1/devices/:id/tags', { id }), { add: [tag] }))
        }
      >
        Add tag
      </button>
      <button
        type="button"
        disabled={none || !tag}
        onClick={() =>
          void each('untag', (id) => post(path('/api/v1/devices/:id/tags', { id }), { remove: [tag] }))
        }
      >
        Remove tag
      </button>
      <ReleasePicker value={release} onChange={setRelease} />
      <button type="button" disabled={none || !release} onClick={() => void deploy()}>
        Deploy
      </button>
      {message ? <p role="status">{message}</p> : null}
      {error ? (
        <p className="error" role="alert">
          {error}
        </p>
      ) : null}
    </div>
  );
}

export function ReleasePicker({
  value,
  onChange,
  label = 'Release to deploy',
}: {
  value: string;
  onChange: (v: string) => void;
  label?: string;
}) {
  const releases = useQuery({
    queryKey: ['releases'],
    queryFn: () => get<{ items: { app: string; version: string }[] }>('/api/v1/releases'),
  });
  return (
    <select aria-label={label} value={value} onChange={(e) => onChange(e.target.value)}>
      <option value="">release…</option>
      {(releases.data?.items ?? []).map((r) => (
        <option key={`${r.app}@${r.version}`} value={`${r.app}@${r.version}`}>
          {r.app} {r.version}
        </option>
      ))}
    </select>
  );
}
