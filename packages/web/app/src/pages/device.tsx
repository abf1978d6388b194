import { useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'wouter';
import type { Device, DeviceAppList, ErrorEnvelope, RemoteLogLine } from '@flotilla/protocol';
import { ApiError, errorText, get, path, post, withQuery } from '../api.js';
import { RequireRole, useSession } from '../auth.js';
import { EventStream } from '../events.js';
import type { LiveEvent } from '../events.js';
import { ActionButton, Badge, ErrorNote, KeyValues, Loaded, Section, Time, formatBytes } from '../ui.js';
import { statusTone } from './devices.js';

export function DevicePage({ id }: { id: string }) {
  const device = useQuery({
    queryKey: ['device', id],
    queryFn: () => get<Device>(path('/api/v1/devices/:id', { id })),
  });
  return (
    <Loaded query={device}>
      {(d) => (
        <>
          <p>
            <Link href="/devices">← Devices</Link>
          </p>
          <h1>
            {d.hostname ?? d.id} <Badge tone={statusTone(d.status)}>{d.status}</Badge>{' '}
            {d.online ? <Badge tone="ok">online</Badge> : <Badge>offline</Badge>}
          </h1>
          <div className="grid">
            <Section title="Device">
              <KeyValues
                rows={[
                  ['Id', <code key="id">{d.id}</code>],
                  ['Last seen', <Time key="ls" at={d.lastSeenAt} />],
                  ['Enrolled', <Time key="en" at={d.enrolledAt} />],
                  ['Registration key', d.registrationKeyId ?? '—'],
                  ['State version', String(d.stateVersion)],
                ]}
              />
              <DeviceActions device={d} />
            </Section>
            <Section title="Tags">
              <TagEditor device={d} />
            </Section>
          </div>
          <Section title="Facts">
            <KeyValues
              rows={Object.entries(d.facts).map(([k, v]) => [
                k,
                typeof v === 'string' ? v : JSON.stringify(v),
              ])}
            />
          </Section>
          <Apps id={d.id} />
          <Section title="Open a tunnel">
            <p>
              Reach a port on this device from your machine (the CLI forwards it over the device's control
              channel):
            </p>
            <pre tabIndex={0}>flotilla tunnel {d.id} 22 --local 2222</pre>
          </Section>
          <History id={d.id} />
        </>
      )}
    </Loaded>
  );
}

function DeviceActions({ device }: { device: Device }) {
  const client = useQueryClient();
  const refresh = () => client.invalidateQueries({ queryKey: ['device', device.id] });
  const act = (action: string) => async () => {
    await post(path(`/api/v1/devices/:id/${action}`, { id: device.id }));
    await refresh();
  };
  return (
    <RequireRole role="deployer">
      <div className="actions">
        {device.status !== 'accepted' && device.status !== 'revoked' ? (
          <ActionButton label="Accept" tone="primary" run={act('accept')} />
        ) : null}
        {device.status === 'pending' ? <ActionButton label="Reject" run={act('reject')} /> : null}
        <RequireRole role="admin">
          {device.status !== 'revoked' ? (
            <ActionButton
              label="Revoke"
              tone="danger"
              confirm={`Revoke ${device.id}? This cannot be undone.`}
              run={act('revoke')}
            />
          ) : null}
        </RequireRole>
      </div>
    </RequireRole>
  );
}

function TagEditor({ device }: { device: Device }) {
  const session = useSession();
  const client = useQueryClient();
  const [tag, setTag] = useState('');
  const [error, setError] = useState<unknown>(null);
  const change = async (body: { add?: string[]; remove?: string[] }) => {
    setError(null);
    try {
      await post(path('/api/v1/devices/:id/tags', { id: device.id }), body);
      setTag('');
      await client.invalidateQueries({ queryKey: ['device', device.id] });
    } catch (e) {
      setError(e);
    }
  };
  const canEdit = session.can('deployer');
  return (
    <>
      <ul className="tags plain" aria-label="Tags">
        {device.tags.length === 0 ? <li className="muted">No tags.</li> : null}
        {device.tags.map((t) => (
          <li key={t}>
            <Badge tone="info">{t}</Badge>
            {canEdit ? (
              <button
                type="button"
                className="link small"
                aria-label={`Remove tag ${t}`}
                onClick={() => void change({ remove: [t] })}
              >
                ×
              </button>
            ) : null}
          </li>
        ))}
      </ul>
      {canEdit ? (
        <form
          className="inline"
          onSubmit={(e) => {
            e.preventDefault();
            if (tag.trim()) void change({ add: [tag.trim()] });
          }}
        >
          <label>
            New tag <input value={tag} onChange={(e) => setTag(e.target.value)} name="tag" />
          </label>
          <button type="submit">Add tag</button>
        </form>
      ) : null}
      {error ? <ErrorNote error={error} /> : null}
    </>
  );
}

function Apps({ id }: { id: string }) {
  const client = useQueryClient();
  const apps = useQuery({
    queryKey: ['device', id, 'apps'],
    queryFn: () => get<DeviceAppList>(path('/api/v1/devices/:id/apps', { id })),
  });
  const [logsFor, setLogsFor] = useState<string | null>(null);
  const action = (app: string, what: string) => async () => {
    await post(path('/api/v1/devices/:id/apps/:app/:action', { id, app, action: what }));
    await client.invalidateQueries({ queryKey: ['device', id, 'apps'] });
  };
  return (
    <Section title="Apps">
      <Loaded query={apps} missing="App state">
        {(list) =>
          list.items.length === 0 ? (
            <p className="muted">No app is assigned to this device.</p>
          ) : (
            <div className="table-wrap" tabIndex={0}>
              <table className="data">
                <thead>
                  <tr>
                    <th scope="col">App</th>
                    <th scope="col">Running</th>
                    <th scope="col">Assigned</th>
                    <th scope="col">Phase</th>
                    <th scope="col">Process</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {list.items.map((a) => (
                    <tr key={a.app}>
                      <td data-label="App">{a.app}</td>
                      <td data-label="Running">{releaseOf(a.current)}</td>
                      <td data-label="Assigned">{releaseOf(a.desired)}</td>
                      <td data-label="Phase">
                        {a.phase ? (
                          <Badge
                            tone={a.phase === 'committed' ? 'ok' : a.phase === 'failed' ? 'bad' : 'info'}
                          >
                            {a.phase}
                          </Badge>
                        ) : (
                          '—'
                        )}
                        {a.bytesTotal ? (
                          <span className="muted small">
                            {' '}
                            {formatBytes(a.bytesDone)} / {formatBytes(a.bytesTotal)}
                          </span>
                        ) : null}
                        {a.error ? <div className="error small">{a.error.message}</div> : null}
                      </td>
                      <td data-label="Process">
                        {a.process ? (
                          <>
                            {a.process.state}{' '}
                            <span className="muted small">({a.process.restarts} restarts)</span>
                          </>
                        ) : (
                          '—'
                        )}
                      </td>
                      <td data-label="Actions">
                        <div className="actions">
                          <RequireRole role="deployer">
                            {/* App output can hold secrets: deployers and admins read it (docs/remote-access.md). */}
                            <button
                              type="button"
                              onClick={() => setLogsFor(logsFor === a.app ? null : a.app)}
                              aria-expanded={logsFor === a.app}
                            >
                              Logs
                            </button>
                            <ActionButton label="Restart" run={action(a.app, 'restart')} />
                            <ActionButton label="Stop" run={action(a.app, 'stop')} />
                            <ActionButton label="Start" run={action(a.app, 'start')} />
                            <ActionButton
                              label="Roll back"
                              confirm={`Roll ${a.app} back to its previous release?`}
                              run={action(a.app, 'rollback')}
                            />
                          </RequireRole>
                        </div>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
      {logsFor ? <Logs id={id} app={logsFor} /> : null}
    </Section>
  );
}

function releaseOf(target: string | null): string {
  if (!target) return '—';
  const [, version] = target.split('/');
  return version ?? target;
}

/** Lines kept in the panel; older ones scroll out. */
const LOG_LINES_MAX = 2000;

/**
 * The app's log, read live from the device (`GET …/apps/:app/log-stream`, newline-delimited JSON,
 * docs/remote-access.md "Logs"): the last 200 lines, then with "follow" each new line as the app
 * writes it. Unticking "follow" closes the stream and keeps what is shown; a followed stream that
 * ends (the device went away, the server restarted) is opened again after 3 s.
 */
function Logs({ id, app }: { id: string; app: string }) {
  const [follow, setFollow] = useState(true);
  const [lines, setLines] = useState<string[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [ended, setEnded] = useState(false);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    setEnded(false);
    if (!follow) return;
    const abort = new AbortController();
    let retry: ReturnType<typeof setTimeout> | null = null;
    setError(null);
    const run = async () => {
      const url = withQuery(path('/api/v1/devices/:id/apps/:app/log-stream', { id, app }), {
        tail: 200,
        follow: true,
      });
      const res = await fetch(url, {
        credentials: 'same-origin',
        headers: { accept: 'application/x-ndjson' },
        signal: abort.signal,
      });
      if (!res.ok || !res.body) {
        const body = (await res.json().catch(() => null)) as Partial<ErrorEnvelope> | null;
        throw new ApiError(
          res.status,
          body?.error?.code ?? `HTTP_${res.status}`,
          body?.error?.message ?? `${res.status} ${res.statusText}`,
        );
      }
      setLines([]);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        const parts = buffer.split('\n');
        buffer = parts.pop() ?? '';
        const add: string[] = [];
        for (const part of parts) {
          if (part.trim() === '') continue;
          const line = JSON.parse(part) as Partial<RemoteLogLine> & {
            error?: { code: string; message: string };
          };
          if (line.error) throw new ApiError(0, line.error.code, line.error.message);
          if (typeof line.text === 'string') add.push(line.text);
        }
        if (add.length > 0) setLines((prev) => [...(prev ?? []), ...add].slice(-LOG_LINES_MAX));
      }
      setEnded(true);
    };
    run().then(
      () => {
        retry = setTimeout(() => setAttempt((n) => n + 1), 3000);
      },
      (e: unknown) => {
        if (!abort.signal.aborted) setError(e);
      },
    );
    return () => {
      abort.abort();
      if (retry) clearTimeout(retry);
    };
  }, [id, app, follow, attempt]);
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    if (follow && pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [lines, follow]);
  return (
    <div className="logs" aria-label={`Logs of ${app}`} role="region">
      <div className="section-head">
        <h3>Logs of {app}</h3>
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow
        </label>
      </div>
      {error ? (
        <p className="error" role="alert">
          {errorText(error)}
        </p>
      ) : ended ? (
        <p className="muted small" role="status">
          The log stream ended; opening it again…
        </p>
      ) : null}
      <pre ref={pre} className="log-text" tabIndex={0} data-testid="log-text">
        {lines === null ? (error ? '' : 'Loading…') : lines.join('\n')}
      </pre>
    </div>
  );
}

/** How many of a device's update events the page keeps (newest first). */
const HISTORY_MAX = 500;

/**
 * This device's update history from the persisted event log: its own stream
 * `GET /api/v1/events?device=ID&type=device.update.*&after=0` replays what the log holds (oldest
 * first; shown newest first), says `: caught-up`, then carries new events live.
 */
function History({ id }: { id: string }) {
  const [history] = useState(
    () =>
      new EventStream(
        withQuery('/api/v1/events', { device: id, type: 'device.update.*', after: 0 }),
        HISTORY_MAX,
      ),
  );
  useEffect(() => {
    history.start();
    return () => history.stop();
  }, [history]);
  const events = useSyncExternalStore(history.onState, history.getRecent);
  const caughtUp = useSyncExternalStore(history.onState, history.getCaughtUp);
  const state = useSyncExternalStore(history.onState, history.getState);
  return (
    <Section title="Update history">
      {state === 'unavailable' ? (
        <p className="muted">This server keeps no event log.</p>
      ) : events.length === 0 ? (
        <p className="muted">{caughtUp ? 'No update event in the log for this device.' : 'Loading…'}</p>
      ) : (
        <div className="table-wrap" tabIndex={0}>
          <table className="data" aria-label="Update history">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Phase</th>
                <th scope="col">Release</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e) => (
                <tr key={e.id}>
                  <td data-label="When">
                    <Time at={e.at} />
                  </td>
                  <td data-label="Phase">
                    <Badge tone={phaseTone(e)}>{phaseOf(e)}</Badge>
                  </td>
                  <td data-label="Release">{eventRelease(e)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {state === 'reconnecting' ? <p className="muted">Reconnecting…</p> : null}
    </Section>
  );
}

function phaseOf(e: LiveEvent): string {
  return typeof e.data.phase === 'string' ? e.data.phase : e.type.replace(/^device\.update\./, '');
}

function phaseTone(e: LiveEvent): 'ok' | 'bad' | 'info' {
  const p = phaseOf(e);
  return p === 'committed'
    ? 'ok'
    : p === 'failed' || p === 'rolled-back' || p === 'rolled_back'
      ? 'bad'
      : 'info';
}

/** `app/version` from the event's target path (`<app>/<version>/<rootObject>`). */
function eventRelease(e: LiveEvent): string {
  const target = e.data.targetPath;
  if (typeof target !== 'string') return e.app ?? '—';
  const [app, version] = target.split('/');
  return app && version ? `${app} ${version}` : target;
}
