/** Small shared pieces: loading/error states, sections that hide when the server lacks a route. */
import { useId, useState } from 'react';
import type { ReactNode } from 'react';
import type { UseQueryResult } from '@tanstack/react-query';
import { ApiError, errorText } from './api.js';

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function timeAgo(iso: string | null | undefined): string {
  if (!iso) return 'never';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (!Number.isFinite(s)) return iso;
  const abs = Math.abs(s);
  const text =
    abs < 60
      ? `${abs}s`
      : abs < 3600
        ? `${Math.round(abs / 60)}m`
        : abs < 86400
          ? `${Math.round(abs / 3600)}h`
          : `${Math.round(abs / 86400)}d`;
  return s >= 0 ? `${text} ago` : `in ${text}`;
}

export function Time({ at }: { at: string | null | undefined }) {
  return at ? (
    <time dateTime={at} title={at}>
      {timeAgo(at)}
    </time>
  ) : (
    <span className="muted">never</span>
  );
}

export function Badge({
  tone,
  children,
}: {
  tone?: 'ok' | 'warn' | 'bad' | 'info' | 'muted';
  children: ReactNode;
}) {
  return <span className={`badge ${tone ?? 'muted'}`}>{children}</span>;
}

export function ErrorNote({ error }: { error: unknown }) {
  return (
    <p className="error" role="alert">
      {errorText(error)}
    </p>
  );
}

/** A note in place of a feature this server does not offer (its route answered 404). */
export function Unavailable({ what }: { what: string }) {
  return (
    <p className="note" role="note">
      {what} is not available on this server (its API route answered 404). The rest of the dashboard works;
      upgrade the server to get it.
    </p>
  );
}

/**
 * Renders a query's data, its loading state, or its error. A missing route shows `missing`
 * (a feature this server lacks) instead of an error, so the page degrades and never crashes.
 */
export function Loaded<T>({
  query,
  missing,
  children,
}: {
  query: UseQueryResult<T>;
  missing?: string;
  children: (data: T) => ReactNode;
}) {
  if (query.isPending)
    return (
      <p className="muted" aria-live="polite">
        Loading…
      </p>
    );
  if (query.isError) {
    if (query.error instanceof ApiError && query.error.missingRoute && missing)
      return <Unavailable what={missing} />;
    return <ErrorNote error={query.error} />;
  }
  return <>{children(query.data)}</>;
}

export function Section({
  title,
  actions,
  children,
}: {
  title: string;
  actions?: ReactNode;
  children: ReactNode;
}) {
  const id = useId();
  return (
    <section className="card" aria-labelledby={id}>
      <div className="section-head">
        <h2 id={id}>{title}</h2>
        {actions ? <div className="actions">{actions}</div> : null}
      </div>
      {children}
    </section>
  );
}

/** A button that runs an async action, shows its error, and asks first when `confirm` is set. */
export function ActionButton({
  label,
  run,
  confirm,
  tone,
  disabled,
}: {
  label: string;
  run: () => Promise<unknown>;
  confirm?: string;
  tone?: 'primary' | 'danger';
  disabled?: boolean;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const click = async () => {
    if (confirm && !window.confirm(confirm)) return;
    setBusy(true);
    setError(null);
    try {
      await run();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <span className="action">
      <button type="button" className={tone ?? ''} disabled={busy || disabled} onClick={() => void click()}>
        {busy ? `${label}…` : label}
      </button>
      {error ? <ErrorNote error={error} /> : null}
    </span>
  );
}

export function KeyValues({ rows }: { rows: [string, ReactNode][] }) {
  return (
    <dl className="kv">
      {rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

/** A secret shown once (a new API token or registration key) with what to do with it. */
export function SecretOnce({
  title,
  secret,
  children,
}: {
  title: string;
  secret: string;
  children?: ReactNode;
}) {
  return (
    <div className="secret" role="status">
      <strong>{title}</strong> — shown only this once; copy it now.
      <pre tabIndex={0} aria-label={title}>
        {secret}
      </pre>
      {children}
    </div>
  );
}
