import { useState } from 'react';
import type { FormEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import type { CreateTokenResponse, Role, TokenList, UserList } from '@flotilla/protocol';
import { del, get, patch, path, post } from '../api.js';
import { useSession } from '../auth.js';
import { ActionButton, Badge, ErrorNote, Loaded, Section, SecretOnce, Time } from '../ui.js';

const ROLES: Role[] = ['viewer', 'deployer', 'admin'];

export function OperatorsPage() {
  const session = useSession();
  const client = useQueryClient();
  const users = useQuery({
    queryKey: ['users'],
    queryFn: () => get<UserList>('/api/v1/users'),
    enabled: session.can('admin'),
  });
  if (!session.can('admin'))
    return (
      <>
        <h1>Operators</h1>
        <p className="note">Only admins manage operators.</p>
      </>
    );
  const refresh = () => client.invalidateQueries({ queryKey: ['users'] });
  return (
    <>
      <h1>Operators</h1>
      <Section title="Add an operator">
        <CreateUser onCreated={() => void refresh()} />
      </Section>
      <Section title="Operators">
        <Loaded query={users}>
          {(l) => (
            <div className="table-wrap" tabIndex={0}>
              <table className="data">
                <thead>
                  <tr>
                    <th scope="col">Username</th>
                    <th scope="col">Role</th>
                    <th scope="col">State</th>
                    <th scope="col">Created</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {l.items.map((u) => (
                    <tr key={u.id}>
                      <td data-label="Username">{u.username}</td>
                      <td data-label="Role">
                        <select
                          aria-label={`Role of ${u.username}`}
                          value={u.role}
                          onChange={(e) =>
                            void patch(path('/api/v1/users/:id', { id: u.id }), {
                              role: e.target.value,
                            }).then(refresh, (err: unknown) => window.alert(String(err)))
                          }
                        >
                          {ROLES.map((r) => (
                            <option key={r}>{r}</option>
                          ))}
                        </select>
                      </td>
                      <td data-label="State">
                        {u.disabled ? <Badge tone="bad">disabled</Badge> : <Badge tone="ok">active</Badge>}
                      </td>
                      <td data-label="Created">
                        <Time at={u.createdAt} />
                      </td>
                      <td data-label="Actions">
                        {u.id === session.user.id ? (
                          <span className="muted">you</span>
                        ) : (
                          <ActionButton
                            label={u.disabled ? 'Enable' : 'Disable'}
                            tone={u.disabled ? undefined : 'danger'}
                            run={async () => {
                              await patch(path('/api/v1/users/:id', { id: u.id }), { disabled: !u.disabled });
                              await refresh();
                            }}
                          />
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </Loaded>
      </Section>
    </>
  );
}

function CreateUser({ onCreated }: { onCreated: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await post('/api/v1/users', { username, password, role });
      setUsername('');
      setPassword('');
      onCreated();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="inline" onSubmit={(e) => void submit(e)}>
      <label>
        Username{' '}
        <input
          name="new-username"
          required
          value={username}
          onChange={(e) => setUsername(e.target.value)}
          autoComplete="off"
        />
      </label>
      <label>
        Password{' '}
        <input
          name="new-password"
          type="password"
          minLength={8}
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          autoComplete="new-password"
        />
      </label>
      <label>
        Role{' '}
        <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
          {ROLES.map((r) => (
            <option key={r}>{r}</option>
          ))}
        </select>
      </label>
      <button type="submit" className="primary">
        Add operator
      </button>
      {error ? <ErrorNote error={error} /> : null}
    </form>
  );
}

/** API tokens: everyone manages their own; an admin sees everyone's. */
export function TokensPage() {
  const session = useSession();
  const client = useQueryClient();
  const tokens = useQuery({ queryKey: ['tokens'], queryFn: () => get<TokenList>('/api/v1/tokens') });
  const [created, setCreated] = useState<CreateTokenResponse | null>(null);
  const [name, setName] = useState('');
  const [expiresIn, setExpiresIn] = useState('90d');
  const [error, setError] = useState<unknown>(null);
  const refresh = () => client.invalidateQueries({ queryKey: ['tokens'] });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      setCreated(
        await post<CreateTokenResponse>('/api/v1/tokens', { name, ...(expiresIn ? { expiresIn } : {}) }),
      );
      setName('');
      await refresh();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      <h1>API tokens</h1>
      <p className="muted">Tokens act with your role ({session.user.role}) for the CLI and automation.</p>
      <Section title="Create a token">
        <form className="inline" onSubmit={(e) => void submit(e)}>
          <label>
            Name <input name="token-name" required value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <label>
            Expires in{' '}
            <input
              name="expiresIn"
              value={expiresIn}
              onChange={(e) => setExpiresIn(e.target.value)}
              size={6}
            />
          </label>
          <button type="submit" className="primary">
            Create token
          </button>
          {error ? <ErrorNote error={error} /> : null}
        </form>
        {created ? (
          <SecretOnce title={`API token "${created.token.name}"`} secret={created.secret}>
            <pre
              tabIndex={0}
            >{`FLOTILLA_TOKEN=<the token> flotilla --server ${window.location.origin} devices ls`}</pre>
          </SecretOnce>
        ) : null}
      </Section>
      <Section title="Tokens">
        <Loaded query={tokens}>
          {(l) =>
            l.items.length === 0 ? (
              <p className="muted">No token.</p>
            ) : (
              <div className="table-wrap" tabIndex={0}>
                <table className="data">
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Created</th>
                      <th scope="col">Expires</th>
                      <th scope="col">Last used</th>
                      <th scope="col">Actions</th>
                    </tr>
                  </thead>
                  <tbody>
                    {l.items.map((t) => (
                      <tr key={t.id}>
                        <td data-label="Name">{t.name}</td>
                        <td data-label="Created">
                          <Time at={t.createdAt} />
                        </td>
                        <td data-label="Expires">{t.expiresAt ? <Time at={t.expiresAt} /> : 'never'}</td>
                        <td data-label="Last used">
                          <Time at={t.lastUsedAt} />
                        </td>
                        <td data-label="Actions">
                          <ActionButton
                            label="Revoke"
                            tone="danger"
                            confirm={`Revoke token "${t.name}"?`}
                            run={async () => {
                              await del(path('/api/v1/tokens/:id', { id: t.id }));
                              await refresh();
                            }}
                          />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Loaded>
      </Section>
    </>
  );
}
