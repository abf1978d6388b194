import { useEffect, useMemo, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, Route, Switch, useLocation } from 'wouter';
import type { MeResponse } from '@flotilla/protocol';
import { ApiError, get, onUnauthenticated, post } from './api.js';
import { LoginPage, makeSession, SessionContext, useSession } from './auth.js';
import { stream, useStreamState } from './events.js';
import type { LiveEvent } from './events.js';
import { OverviewPage } from './pages/overview.js';
import { DevicesPage } from './pages/devices.js';
import { DevicePage } from './pages/device.js';
import { ReleasesPage, ReleasePage, ReleaseDiffPage } from './pages/releases.js';
import { RolloutsPage, RolloutPage, NewRolloutPage } from './pages/rollouts.js';
import { RegistrationKeysPage } from './pages/regkeys.js';
import { OperatorsPage, TokensPage } from './pages/operators.js';
import { AuditPage } from './pages/audit.js';
import { KeysPage } from './pages/keys.js';
import { ErrorNote } from './ui.js';

/**
 * Which cached queries an event makes stale, by the first part of its type (docs/events.md): a
 * device's update report also moves the rollout it belongs to (`rollout` column).
 */
function staleKeys(e: LiveEvent): string[] {
  const kind = e.type.split('.')[0] ?? '';
  const keys = ((): string[] => {
    switch (kind) {
      case 'device':
        return ['devices', 'device', 'fleet'];
      case 'rollout':
        return ['rollouts', 'rollout', 'fleet'];
      case 'deployment':
        return ['device', 'fleet'];
      case 'audit': {
        // An operator's change (`audit.release.push`, `audit.device.tags`, …): what it touched.
        const subject = e.type.split('.')[1] ?? '';
        if (subject === 'release') return ['releases', 'fleet'];
        if (subject === 'rollout') return ['rollouts', 'rollout'];
        return e.deviceId ? ['devices', 'device'] : [];
      }
      default:
        return [];
    }
  })();
  if (e.rollout !== null && kind !== 'rollout') keys.push('rollouts', 'rollout');
  return keys;
}

function useLiveInvalidation() {
  const client = useQueryClient();
  useEffect(() => {
    // A large fleet sends many events: mark queries stale at most twice a second.
    const pending = new Set<string>();
    let timer: ReturnType<typeof setTimeout> | null = null;
    const flush = () => {
      timer = null;
      for (const key of pending) void client.invalidateQueries({ queryKey: [key] });
      pending.clear();
    };
    const off = stream.subscribe((e) => {
      for (const k of staleKeys(e)) pending.add(k);
      timer ??= setTimeout(flush, 500);
    });
    let wasLive = stream.getState() === 'live';
    const offState = stream.onState(() => {
      const live = stream.getState() === 'live';
      // Back after a gap: refetch everything shown, events may have been missed.
      if (live && !wasLive) void client.invalidateQueries();
      wasLive = live;
    });
    stream.start();
    return () => {
      off();
      offState();
      if (timer) clearTimeout(timer);
      stream.stop();
    };
  }, [client]);
}

const NAV: { href: string; label: string; admin?: boolean }[] = [
  { href: '/', label: 'Overview' },
  { href: '/devices', label: 'Devices' },
  { href: '/releases', label: 'Releases' },
  { href: '/rollouts', label: 'Rollouts' },
  { href: '/registration-keys', label: 'Registration keys' },
  { href: '/tokens', label: 'API tokens' },
  { href: '/operators', label: 'Operators', admin: true },
  { href: '/audit', label: 'Audit log', admin: true },
  { href: '/keys', label: 'Signing keys' },
];

function LiveIndicator() {
  const state = useStreamState();
  const text: Record<string, string> = {
    connecting: 'connecting…',
    live: 'live',
    reconnecting: 'reconnecting…',
    unavailable: 'no live updates',
    stopped: 'offline',
  };
  return (
    <span className={`live live-${state}`} role="status" aria-live="polite" title="event stream">
      <span aria-hidden="true">●</span> {text[state]}
    </span>
  );
}

function Shell() {
  const session = useSession();
  const [location] = useLocation();
  const [menuOpen, setMenuOpen] = useState(false);
  useLiveInvalidation();
  useEffect(() => setMenuOpen(false), [location]);
  const links = NAV.filter((n) => !n.admin || session.can('admin'));
  const active = (href: string) => (href === '/' ? location === '/' : location.startsWith(href));
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link href="/" className="brand">
          Flotilla
        </Link>
        <button
          type="button"
          className="menu-toggle"
          aria-expanded={menuOpen}
          aria-controls="nav"
          onClick={() => setMenuOpen((o) => !o)}
        >
          Menu
        </button>
        <nav id="nav" aria-label="Main" className={menuOpen ? 'open' : ''}>
          <ul>
            {links.map((n) => (
              <li key={n.href}>
                <Link href={n.href} aria-current={active(n.href) ? 'page' : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <LiveIndicator />
          <span>
            {session.user.username} <span className="muted">({session.user.role})</span>
          </span>
          <button type="button" onClick={() => void session.logout()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Switch>
          <Route path="/" component={OverviewPage} />
          <Route path="/devices" component={DevicesPage} />
          <Route path="/devices/:id">{(p) => <DevicePage id={p.id} />}</Route>
          <Route path="/releases" component={ReleasesPage} />
          <Route path="/releases/:app/diff">{(p) => <ReleaseDiffPage app={p.app} />}</Route>
          <Route path="/releases/:app/:version">
            {(p) => <ReleasePage app={p.app} version={p.version} />}
          </Route>
          <Route path="/rollouts" component={RolloutsPage} />
          <Route path="/rollouts/new" component={NewRolloutPage} />
          <Route path="/rollouts/:id">{(p) => <RolloutPage id={p.id} />}</Route>
          <Route path="/registration-keys" component={RegistrationKeysPage} />
          <Route path="/tokens" component={TokensPage} />
          <Route path="/operators" component={OperatorsPage} />
          <Route path="/audit" component={AuditPage} />
          <Route path="/keys" component={KeysPage} />
          <Route>
            <h1>Not found</h1>
            <p>
              No page here. <Link href="/">Back to the overview</Link>.
            </p>
          </Route>
        </Switch>
      </main>
    </>
  );
}

export function App() {
  const client = useQueryClient();
  const [notice, setNotice] = useState<string | undefined>();
  const me = useQuery({
    queryKey: ['me'],
    queryFn: () => get<MeResponse>('/api/v1/auth/me'),
    retry: false,
    staleTime: Infinity,
  });
  useEffect(
    () =>
      onUnauthenticated(() => {
        if (client.getQueryData(['me'])) setNotice('Your session ended; sign in again.');
        client.setQueryData(['me'], null);
      }),
    [client],
  );
  const user = me.data?.user ?? null;
  const session = useMemo(
    () =>
      user
        ? makeSession(user, async () => {
            await post('/api/v1/auth/logout').catch(() => undefined);
            client.clear();
            setNotice('Signed out.');
            client.setQueryData(['me'], null);
          })
        : null,
    [user, client],
  );
  useEffect(() => {
    document.title = session ? 'Flotilla' : 'Sign in · Flotilla';
  }, [session]);
  if (me.isPending) return <p className="muted">Loading…</p>;
  if (me.isError && !(me.error instanceof ApiError && me.error.status === 401)) {
    return (
      <main id="main" className="login">
        <h1>Flotilla</h1>
        <ErrorNote error={me.error} />
      </main>
    );
  }
  if (!session)
    return (
      <LoginPage
        notice={notice}
        onLogin={(m) => {
          setNotice(undefined);
          client.setQueryData(['me'], m);
        }}
      />
    );
  return (
    <SessionContext.Provider value={session}>
      <Shell />
    </SessionContext.Provider>
  );
}
