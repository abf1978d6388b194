import { useQuery } from '@tanstack/react-query';
import type { TufStatus } from '@flotilla/protocol';
import { get } from '../api.js';
import { Badge, Loaded, Section, Time } from '../ui.js';

const ROLES = ['root', 'targets', 'snapshot', 'timestamp'] as const;
const OFFLINE = new Set(['root', 'targets']);
const WEEK = 7 * 24 * 3600;

export function KeysPage() {
  const status = useQuery({
    queryKey: ['tuf'],
    queryFn: () => get<TufStatus>('/api/v1/tuf/status'),
    refetchInterval: 60_000,
  });
  return (
    <>
      <h1>Signing keys (TUF)</h1>
      <Loaded query={status} missing="TUF status">
        {(s) =>
          !s.initialized ? (
            <p className="note">
              The image repository is not initialized yet: run <code>flotilla keys init</code> on the machine
              that holds the offline keys.
            </p>
          ) : (
            <>
              {s.warnings.length > 0 ? (
                <Section title="Warnings">
                  <ul className="plain">
                    {s.warnings.map((w) => (
                      <li key={w.role} className={w.expired ? 'error' : 'warn-text'} role="alert">
                        The {w.role} metadata (version {w.version}) {w.expired ? 'has expired' : 'expires'}{' '}
                        <Time at={w.expires} />. Renew it: <code>{w.command}</code>
                      </li>
                    ))}
                  </ul>
                </Section>
              ) : (
                <p role="status">
                  <Badge tone="ok">ok</Badge> No signing metadata is close to expiry.
                </p>
              )}
              <Section title="Roles">
                <div className="table-wrap" tabIndex={0}>
                  <table className="data">
                    <thead>
                      <tr>
                        <th scope="col">Role</th>
                        <th scope="col">Key</th>
                        <th scope="col">Version</th>
                        <th scope="col">Expires</th>
                        <th scope="col">State</th>
                      </tr>
                    </thead>
                    <tbody>
                      {ROLES.map((role) => {
                        const r = s[role];
                        const left = r ? (Date.parse(r.expires) - Date.now()) / 1000 : null;
                        return (
                          <tr key={role}>
                            <td data-label="Role">{role}</td>
                            <td data-label="Key">
                              {OFFLINE.has(role) ? 'offline (operator)' : 'online (server)'}
                            </td>
                            <td data-label="Version">{r?.version ?? '—'}</td>
                            <td data-label="Expires">{r ? <Time at={r.expires} /> : '—'}</td>
                            <td data-label="State">
                              {left === null ? (
                                '—'
                              ) : left < 0 ? (
                                <Badge tone="bad">expired</Badge>
                              ) : !OFFLINE.has(role) ? (
                                <Badge tone="ok">renewed by the server</Badge>
                              ) : left < WEEK ? (
                                <Badge tone="warn">expires soon</Badge>
                              ) : (
                                <Badge tone="ok">valid</Badge>
                              )}
                            </td>
                          </tr>
                        );
                      })}
                    </tbody>
                  </table>
                </div>
              </Section>
            </>
          )
        }
      </Loaded>
    </>
  );
}
