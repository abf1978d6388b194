import { useState } from 'react';
import type { FormEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import type { CreateRegistrationKeyResponse, RegistrationKeyList } from '@flotilla/protocol';
import { get, path, post } from '../api.js';
import { RequireRole, useSession } from '../auth.js';
import { ActionButton, Badge, ErrorNote, Loaded, Section, SecretOnce, Time } from '../ui.js';

export function RegistrationKeysPage() {
  const session = useSession();
  const client = useQueryClient();
  const keys = useQuery({
    queryKey: ['regkeys'],
    queryFn: () => get<RegistrationKeyList>('/api/v1/registration-keys'),
    enabled: session.can('deployer'),
  });
  const [created, setCreated] = useState<CreateRegistrationKeyResponse | null>(null);
  if (!session.can('deployer'))
    return (
      <>
        <h1>Registration keys</h1>
        <p className="note">Registration keys are visible to deployers and admins.</p>
      </>
    );
  return (
    <>
      <h1>Registration keys</h1>
      <RequireRole role="admin">
        <Section title="Create a key">
          <CreateKey
            onCreated={(r) => {
              setCreated(r);
              void client.invalidateQueries({ queryKey: ['regkeys'] });
            }}
          />
          {created ? (
            <SecretOnce title={`Registration key "${created.key.name}"`} secret={created.secret}>
              <p>Install and enroll a machine with it:</p>
              <pre
                tabIndex={0}
              >{`curl -fsSL ${window.location.origin}/install.sh | sh -s -- --registration-key ${created.secret}`}</pre>
            </SecretOnce>
          ) : null}
        </Section>
      </RequireRole>
      <Section title="Keys">
        <Loaded query={keys}>
          {(l) =>
            l.items.length === 0 ? (
              <p className="muted">No registration key yet.</p>
            ) : (
              <div className="table-wrap" tabIndex={0}>
                <table className="data">
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">State</th>
                      <th scope="col">Tags</th>
                      <th scope="col">Uses</th>
                      <th scope="col">Auto-accept</th>
                      <th scope="col">Expires</th>
                      <th scope="col">Created</th>
                      {session.can('admin') ? <th scope="col">Actions</th> : null}
                    </tr>
                  </thead>
                  <tbody>
                    {l.items.map((k) => (
                      <tr key={k.id}>
                        <td data-label="Name">{k.name}</td>
                        <td data-label="State">
                          <Badge tone={k.state === 'active' ? 'ok' : 'muted'}>{k.state}</Badge>
                        </td>
                        <td data-label="Tags">{k.tags.join(', ') || '—'}</td>
                        <td data-label="Uses">
                          {k.uses}
                          {k.maxUses === null ? '' : ` / ${k.maxUses}`}
                        </td>
                        <td data-label="Auto-accept">{k.autoAccept ? 'yes' : 'no'}</td>
                        <td data-label="Expires">{k.expiresAt ? <Time at={k.expiresAt} /> : 'never'}</td>
                        <td data-label="Created">
                          <Time at={k.createdAt} /> by {k.createdBy}
                        </td>
                        {session.can('admin') ? (
                          <td data-label="Actions">
                            {k.state === 'active' ? (
                              <ActionButton
                                label="Revoke"
                                tone="danger"
                                confirm={`Revoke key "${k.name}"? No new device can enroll with it.`}
                                run={async () => {
                                  await post(path('/api/v1/registration-keys/:id/revoke', { id: k.id }));
                                  await client.invalidateQueries({ queryKey: ['regkeys'] });
                                }}
                              />
                            ) : null}
                          </td>
                        ) : null}
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

function CreateKey({ onCreated }: { onCreated: (r: CreateRegistrationKeyResponse) => void }) {
  const [name, setName] = useState('');
  const [tags, setTags] = useState('');
  const [maxUses, setMaxUses] = useState('');
  const [expiresIn, setExpiresIn] = useState('');
  const [autoAccept, setAutoAccept] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const r = await post<CreateRegistrationKeyResponse>('/api/v1/registration-keys', {
        name,
        tags: tags
          .split(',')
          .map((t) => t.trim())
          .filter(Boolean),
        ...(maxUses ? { maxUses: Number(maxUses) } : {}),
        ...(expiresIn ? { expiresIn } : {}),
        autoAccept,
      });
      setName('');
      onCreated(r);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="inline" onSubmit={(e) => void submit(e)}>
      <label>
        Name <input name="name" required value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      <label>
        Tags{' '}
        <input name="tags" placeholder="lab, arm64" value={tags} onChange={(e) => setTags(e.target.value)} />
      </label>
      <label>
        Max uses{' '}
        <input
          name="maxUses"
          type="number"
          min={1}
          value={maxUses}
          onChange={(e) => setMaxUses(e.target.value)}
        />
      </label>
      <label>
        Expires in{' '}
        <input
          name="expiresIn"
          placeholder="7d"
          value={expiresIn}
          onChange={(e) => setExpiresIn(e.target.value)}
          size={6}
        />
      </label>
      <label>
        <input type="checkbox" checked={autoAccept} onChange={(e) => setAutoAccept(e.target.checked)} />{' '}
        Accept devices automatically
      </label>
      <button type="submit" className="primary">
        Create key
      </button>
      {error ? <ErrorNote error={error} /> : null}
    </form>
  );
}
