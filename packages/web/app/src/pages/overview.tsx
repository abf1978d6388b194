import { useQuery } from '@tanstack/react-query';
import { Link } from 'wouter';
import { get } from '../api.js';
import { BarChart } from '../charts.js';
import { useRecentEvents, useStreamState } from '../events.js';
import type { LiveEvent } from '../events.js';
import { fleetNumbers } from '../fleet.js';
import { Loaded, Section, Time } from '../ui.js';
import { isFinished, progressOf } from './rollouts.js';
import type { RolloutList } from '@flotilla/protocol';

export function OverviewPage() {
  const fleet = useQuery({ queryKey: ['fleet'], queryFn: fleetNumbers, refetchInterval: 30_000 });
  const rollouts = useQuery({
    queryKey: ['rollouts'],
    queryFn: () => get<RolloutList>('/api/v1/rollouts'),
  });
  const events = useRecentEvents();
  const streamState = useStreamState();
  const failures = events.filter(isFailure);
  return (
    <>
      <h1>Fleet overview</h1>
      <Loaded query={fleet}>
        {(f) => (
          <>
            <ul className="stats" aria-label="Devices">
              {f.counts.map((c) => (
                <li key={c.label} className={`stat stat-${c.label}`}>
                  <span className="stat-value">{c.value}</span>
                  <span className="stat-label">{c.label} devices</span>
                </li>
              ))}
            </ul>
            <Section title="Release distribution">
              {f.distribution.length === 0 ? (
                <p className="muted">No app is deployed yet.</p>
              ) : (
                <div className="grid">
                  {f.distribution.map((d) => (
                    <div key={d.app}>
                      <h3>
                        {d.app}
                        {d.updating > 0 ? (
                          <span className="muted small"> ({d.updating} updating)</span>
                        ) : null}
                      </h3>
                      <BarChart
                        title={`Devices per release of ${d.app}`}
                        categoryLabel="release"
                        categories={d.versions.map((v) => v.version)}
                        series={[{ label: 'devices', values: d.versions.map((v) => v.devices) }]}
                        height={180}
                      />
                    </div>
                  ))}
                </div>
              )}
            </Section>
          </>
        )}
      </Loaded>
      <Section title="Active rollouts" actions={<Link href="/rollouts">All rollouts</Link>}>
        <Loaded query={rollouts} missing="Rollouts">
          {(r) => {
            const active = r.items.filter((x) => !isFinished(x.state));
            return active.length === 0 ? (
              <p className="muted">No rollout is running.</p>
            ) : (
              <ul className="plain">
                {active.map((x) => (
                  <li key={x.id}>
                    <Link href={`/rollouts/${encodeURIComponent(x.id)}`}>
                      {x.app} {x.version}
                    </Link>{' '}
                    <span className="muted">{x.state}</span>{' '}
                    <progress max={100} value={progressOf(x)} aria-label={`${x.app} ${x.version} progress`} />{' '}
                    {progressOf(x)} %
                  </li>
                ))}
              </ul>
            );
          }}
        </Loaded>
      </Section>
      <div className="grid">
        <Section title="Recent events">
          {streamState === 'unavailable' ? (
            <p className="note" role="note">
              This server has no event stream (GET /api/v1/events answered 404): pages refresh when you open
              them.
            </p>
          ) : events.length === 0 ? (
            <p className="muted">No events since this page opened.</p>
          ) : (
            <EventList events={events.slice(0, 15)} />
          )}
        </Section>
        <Section title="Recent failures">
          {failures.length === 0 ? (
            <p className="muted">No failures since this page opened.</p>
          ) : (
            <EventList events={failures.slice(0, 15)} />
          )}
        </Section>
      </div>
    </>
  );
}

/**
 * Failures among the stream's event types (docs/events.md): an update that failed or rolled back,
 * a rollout device that failed, a rollout that paused or was aborted.
 */
function isFailure(e: LiveEvent): boolean {
  return (
    e.type === 'device.update.failed' ||
    e.type === 'device.update.rolled-back' ||
    e.type === 'rollout.device.failed' ||
    e.type === 'rollout.paused' ||
    e.type === 'rollout.aborted'
  );
}

export function EventList({ events }: { events: LiveEvent[] }) {
  return (
    <ol className="events">
      {events.map((e) => (
        <li key={e.id}>
          <code>{e.type}</code> <Time at={e.at} />{' '}
          {typeof e.deviceId === 'string' ? (
            <Link href={`/devices/${encodeURIComponent(e.deviceId)}`}>{e.deviceId}</Link>
          ) : null}
        </li>
      ))}
    </ol>
  );
}
