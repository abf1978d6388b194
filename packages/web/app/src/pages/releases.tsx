import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'wouter';
import type { Release, ReleaseDiff, ReleaseList } from '@flotilla/protocol';
import { get, path } from '../api.js';
import { FileTree } from '../tree.js';
import { Badge, KeyValues, Loaded, Section, Time, formatBytes } from '../ui.js';

export function ReleasesPage() {
  const releases = useQuery({ queryKey: ['releases'], queryFn: () => get<ReleaseList>('/api/v1/releases') });
  return (
    <>
      <h1>Releases</h1>
      <Loaded query={releases}>
        {(list) =>
          list.items.length === 0 ? (
            <p className="muted">
              No release yet. Publish one with <code>flotilla release create</code>.
            </p>
          ) : (
            <Section title={`${list.items.length} releases`}>
              <div className="table-wrap" tabIndex={0}>
                <table className="data">
                  <thead>
                    <tr>
                      <th scope="col">App</th>
                      <th scope="col">Version</th>
                      <th scope="col">Runtime</th>
                      <th scope="col">Files</th>
                      <th scope="col">Size</th>
                      <th scope="col">Stored</th>
                      <th scope="col">Signed</th>
                      <th scope="col">Created</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.items.map((r) => (
                      <tr key={`${r.app}/${r.version}`}>
                        <td data-label="App">{r.app}</td>
                        <td data-label="Version">
                          <Link
                            href={`/releases/${encodeURIComponent(r.app)}/${encodeURIComponent(r.version)}`}
                          >
                            {r.version}
                          </Link>
                        </td>
                        <td data-label="Runtime">{r.runtime}</td>
                        <td data-label="Files">{r.files}</td>
                        <td data-label="Size">{formatBytes(r.bytes)}</td>
                        <td data-label="Stored">{formatBytes(r.storedBytes)}</td>
                        <td data-label="Signed">
                          {r.signed ? <Badge tone="ok">signed</Badge> : <Badge tone="warn">unsigned</Badge>}
                        </td>
                        <td data-label="Created">
                          <Time at={r.createdAt} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </Section>
          )
        }
      </Loaded>
    </>
  );
}

export function ReleasePage({ app, version }: { app: string; version: string }) {
  const release = useQuery({
    queryKey: ['releases', app, version],
    queryFn: () => get<Release>(path('/api/v1/releases/:app/:version', { app, version })),
  });
  const siblings = useQuery({
    queryKey: ['releases', { app }],
    queryFn: () => get<ReleaseList>('/api/v1/releases', { app }),
  });
  // The release published just before this one, if any: what a device updating to it had.
  const ordered = [...(siblings.data?.items ?? [])].sort(
    (a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt),
  );
  const at = ordered.findIndex((r) => r.version === version);
  const previous = at > 0 ? ordered[at - 1] : undefined;
  return (
    <>
      <p>
        <Link href="/releases">← Releases</Link>
      </p>
      <h1>
        {app} {version}
      </h1>
      <Loaded query={release}>
        {(r) => (
          <>
            <Section title="Release">
              <KeyValues
                rows={[
                  ['Runtime', r.runtime],
                  ['Files', String(r.files)],
                  ['Size (uncompressed)', formatBytes(r.bytes)],
                  [
                    'Stored on the server',
                    r.storedBytes < r.bytes
                      ? `${formatBytes(r.storedBytes)} (${Math.round((100 * r.storedBytes) / r.bytes)} % of its size: compressed, shared chunks stored once)`
                      : `${formatBytes(r.storedBytes)} (objects and tree metadata; small files do not compress)`,
                  ],
                  [
                    'Signed',
                    r.signed
                      ? 'yes: offline-signed targets metadata names it'
                      : 'no: run flotilla keys sign to sign it',
                  ],
                  ['Target path', <code key="t">{r.targetPath}</code>],
                  ['Root object', <code key="o">{r.rootObject}</code>],
                  [
                    'Created',
                    <span key="c">
                      <Time at={r.createdAt} /> by {r.createdBy}
                    </span>,
                  ],
                ]}
              />
            </Section>
            <Section title="Configuration">
              {Object.keys(r.config).length === 0 ? (
                <p className="muted">No configuration.</p>
              ) : (
                <pre tabIndex={0}>{JSON.stringify(r.config, null, 2)}</pre>
              )}
              {r.secrets && r.secrets.length > 0 ? (
                <>
                  <h3>Secrets</h3>
                  <ul className="plain">
                    {r.secrets.map((s) => (
                      <li key={s.name}>
                        <code>{s.name}</code>{' '}
                        {s.stored ? (
                          <Badge tone="ok">stored</Badge>
                        ) : (
                          <Badge tone="warn">value missing</Badge>
                        )}
                      </li>
                    ))}
                  </ul>
                </>
              ) : null}
            </Section>
            <Section title="Files">
              <FileTree root={r.rootObject} />
            </Section>
            {previous ? (
              <Section title={`Files changed since ${previous.version}`}>
                <Diff app={app} from={previous.version} to={version} />
              </Section>
            ) : null}
            <p>
              <Link href={`/releases/${encodeURIComponent(app)}/diff?to=${encodeURIComponent(version)}`}>
                Compare with another version
              </Link>
            </p>
          </>
        )}
      </Loaded>
    </>
  );
}

export function ReleaseDiffPage({ app }: { app: string }) {
  const params = new URLSearchParams(window.location.search);
  const siblings = useQuery({
    queryKey: ['releases', { app }],
    queryFn: () => get<ReleaseList>('/api/v1/releases', { app }),
  });
  const versions = siblings.data?.items.map((r) => r.version) ?? [];
  const [from, setFrom] = useState(params.get('from') ?? '');
  const [to, setTo] = useState(params.get('to') ?? '');
  const f = from || versions.at(-2) || versions[0] || '';
  const t = to || versions.at(-1) || '';
  return (
    <>
      <p>
        <Link href="/releases">← Releases</Link>
      </p>
      <h1>Compare {app} releases</h1>
      <Section title="Versions">
        <div className="inline">
          <label>
            From{' '}
            <select value={f} onChange={(e) => setFrom(e.target.value)}>
              {versions.map((v) => (
                <option key={v}>{v}</option>
              ))}
            </select>
          </label>
          <label>
            To{' '}
            <select value={t} onChange={(e) => setTo(e.target.value)}>
              {versions.map((v) => (
                <option key={v}>{v}</option>
              ))}
            </select>
          </label>
        </div>
      </Section>
      {f && t && f !== t ? (
        <Section title={`${f} → ${t}`}>
          <Diff app={app} from={f} to={t} />
        </Section>
      ) : (
        <p className="muted">Choose two different versions.</p>
      )}
    </>
  );
}

function Diff({ app, from, to }: { app: string; from: string; to: string }) {
  const diff = useQuery({
    queryKey: ['releases', app, 'diff', from, to],
    queryFn: () => get<ReleaseDiff>(path('/api/v1/releases/:app/diff', { app }), { from, to }),
  });
  return (
    <Loaded query={diff}>
      {(d) => (
        <>
          <p>
            A device on {d.from} fetches <strong>{d.fetchObjects}</strong> objects,{' '}
            <strong>{formatBytes(d.fetchBytes)}</strong>, to reach {d.to}.
          </p>
          <div className="table-wrap" tabIndex={0}>
            <table className="data">
              <thead>
                <tr>
                  <th scope="col">Change</th>
                  <th scope="col">Path</th>
                  <th scope="col">Size</th>
                </tr>
              </thead>
              <tbody>
                {d.added.map((x) => (
                  <tr key={`a${x.path}`}>
                    <td data-label="Change">
                      <Badge tone="ok">added</Badge>
                    </td>
                    <td data-label="Path">
                      <code>{x.path}</code>
                    </td>
                    <td data-label="Size">{formatBytes(x.size)}</td>
                  </tr>
                ))}
                {d.modified.map((x) => (
                  <tr key={`m${x.path}`}>
                    <td data-label="Change">
                      <Badge tone="info">modified</Badge>
                    </td>
                    <td data-label="Path">
                      <code>{x.path}</code>
                    </td>
                    <td data-label="Size">
                      {formatBytes(x.oldSize)} → {formatBytes(x.newSize)}
                    </td>
                  </tr>
                ))}
                {d.removed.map((x) => (
                  <tr key={`r${x.path}`}>
                    <td data-label="Change">
                      <Badge tone="bad">removed</Badge>
                    </td>
                    <td data-label="Path">
                      <code>{x.path}</code>
                    </td>
                    <td data-label="Size">{formatBytes(x.size)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {d.added.length + d.modified.length + d.removed.length === 0 ? (
            <p className="muted">No file differs.</p>
          ) : null}
        </>
      )}
    </Loaded>
  );
}
