import { createContext, useContext, useState } from 'react';
import type { FormEvent } from 'react';
import type { LoginResponse, MeResponse, Role, User } from '@flotilla/protocol';
import { errorText, post } from './api.js';

const RANK: Record<Role, number> = { admin: 3, deployer: 2, viewer: 1 };

export interface Session {
  user: User;
  /** Whether the signed-in operator has at least `role` (admin > deployer > viewer). */
  can(role: Role): boolean;
  logout(): Promise<void>;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside the signed-in app');
  return s;
}

export function makeSession(user: User, logout: () => Promise<void>): Session {
  return { user, can: (role) => RANK[user.role] >= RANK[role], logout };
}

/** Renders its children only for operators with at least `role`: a viewer sees no mutating control. */
export function RequireRole({ role, children }: { role: Role; children: React.ReactNode }) {
  const s = useSession();
  return s.can(role) ? <>{children}</> : null;
}

export function LoginPage({ onLogin, notice }: { onLogin: (me: MeResponse) => void; notice?: string }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const res = await post<LoginResponse>('/api/v1/auth/login', { username, password });
      onLogin({ user: res.user, via: 'session' });
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="login" id="main">
      <form className="card login-card" onSubmit={(e) => void submit(e)} aria-labelledby="login-title">
        <h1 id="login-title">Flotilla</h1>
        <p className="muted">Sign in to the operator dashboard.</p>
        {notice ? <p role="status">{notice}</p> : null}
        <label>
          Username
          <input
            name="username"
            autoComplete="username"
            required
            value={username}
            onChange={(e) => setUsername(e.target.value)}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        {error ? (
          <p className="error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
