/**
 * Rollouts (staged deployments in waves). The routes are the rollout engine's contract:
 * `/api/v1/rollouts…`; a server without it answers 404 and these pages say so.
 */
import { useEffect, useRef, useState } from 'react';
import type { FormEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useLocation } from 'wouter';
import { ApiError, errorText, get, path, post } from '../api.js';
import { RequireRole } from '../auth.js';
import { BarChart, LineChart } from '../charts.js';
import { ReleasePicker } from './devices.js';
import { ActionButton, Badge, ErrorNote, KeyValues, Loaded, Section, Unavailable } from '../ui.js';
import type {
  CreateRolloutRequest,
  Rollout,
  RolloutList,
  RolloutPreview,
  RolloutPreviewRequest,
  RolloutState,
  RolloutWave,
  RolloutWhy,
  WaveCounts,
} from '@flotilla/protocol';

/** A device's phases in a rollout, in the order it goes through them (docs/rollouts.md). */
export const WAVE_STATES = [
  'pending',
  'notified',
  'downloading',
  'installing',
  'soaking',
  'succeeded',
  'failed',
  'cancelled',
] as const satisfies readonly (keyof WaveCounts)[];

/** A rollout that will not move again. */
export function isFinished(state: RolloutState): boolean {
  return state === 'completed' || state === 'aborted';
}

/** Waiting for an operator to approve the next wave. */
function awaitsApproval(r: Rollout): boolean {
  return r.state === 'waiting-approval';
}

/**
 * Percent of the rollout's devices that succeeded. Cancelled devices (aborted before they started,
 * or superseded by another deployment) are not counted, as the engine measures its waves.
 */
export function progressOf(r: Pick<Rollout, 'waves'>): number {
  const total = r.waves.reduce((n, w) => n + w.size - w.counts.cancelled, 0);
  const done = r.waves.reduce((n, w) => n + w.counts.succeeded, 0);
  return total <= 0 ? 0 : Math.floor((100 * done) / total);
}

function wavePercent(w: RolloutWave): number {
  const size = w.size - w.counts.cancelled;
  return size <= 0 ? 0 : Math.round((100 * w.counts.succeeded) / size);
}

/** Badge colour for a rollout state, a wave state (waiting, running, done) or a device phase. */
const tone = (state: string) =>
  state === 'completed' || state === 'succeeded' || state === 'done'
    ? 'ok'
    : state === 'paused' || state === 'waiting-approval' || state === 'not-matched'
      ? 'warn'
      : state === 'aborted' || state === 'failed'
        ? 'bad'
        : 'info';

export function RolloutsPage() {
  const list = useQuery({
    queryKey: ['rollouts'],
    queryFn: () => get<RolloutList>('/api/v1/rollouts'),
  });
  return (
    <>
      <div className="section-head">
        <h1>Rollouts</h1>
        {list.isSuccess ? (
          <RequireRole role="deployer">
            <Link href="/rollouts/new" className="button primary">
              New rollout
            </Link>
          </RequireRole>
        ) : null}
      </div>
      <Loaded query={list} missing="Rollouts">
        {(l) =>
          l.items.length === 0 ? (
            <p className="muted">No rollout yet.</p>
          ) : (
            <div className="table-wrap" tabIndex={0}>
              <table className="data">
                <thead>
                  <tr>
                    <th scope="col">Release</th>
                    <th scope="col">State</th>
                    <th scope="col">Wave</th>
                    <th scope="col">Progress</th>
                  </tr>
                </thead>
                <tbody>
                  {l.items.map((r) => (
                    <tr key={r.id}>
                      <td data-label="Release">
                        <Link href={`/rollouts/${encodeURIComponent(r.id)}`}>
                          {r.app} {r.version}
                        </Link>
                      </td>
                      <td data-label="State">
                        <Badge tone={tone(r.state)}>{r.state}</Badge>
                      </td>
                      <td data-label="Wave">
                        {r.currentWave + 1} of {r.waves.length}
                      </td>
                      <td data-label="Progress">
                        <progress
                          max={100}
                          value={progressOf(r)}
                          aria-label={`Progress of ${r.app} ${r.version}`}
                        />{' '}
                        {progressOf(r)} %
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
    </>
  );
}

function parseWaves(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((w) => w.trim())
    .filter((w) => w !== '');
}

export function NewRolloutPage() {
  const [, navigate] = useLocation();
  const client = useQueryClient();
  const [release, setRelease] = useState('');
  const [filter, setFilter] = useState('status==accepted');
  const [wavesText, setWavesText] = useState('10%, 50%, 100%');
  // The engine's defaults (docs/rollouts.md, as `flotilla rollout create`): every device of a wave
  // must succeed, the first failure pauses, no soak.
  const [minSuccess, setMinSuccess] = useState('100');
  const [maxFailure, setMaxFailure] = useState('0');
  const [soak, setSoak] = useState('0');
  const [approve, setApprove] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const waves = parseWaves(wavesText);
  // Live preview: how many devices match and how the waves split them (debounced).
  const [previewKey, setPreviewKey] = useState({ filter, waves });
  useEffect(() => {
    const t = setTimeout(() => setPreviewKey({ filter, waves: parseWaves(wavesText) }), 300);
    return () => clearTimeout(t);
  }, [filter, wavesText]);
  const preview = useQuery({
    queryKey: ['rollouts', 'preview', previewKey],
    queryFn: () =>
      post<RolloutPreview>('/api/v1/rollouts/preview', {
        filter: previewKey.filter,
        waves: previewKey.waves,
      } satisfies RolloutPreviewRequest),
    enabled: previewKey.waves.length > 0,
    retry: false,
  });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const [app = '', version = ''] = release.split('@');
    try {
      // Gates are percents (0–100), as the engine takes them.
      const body: CreateRolloutRequest = {
        app,
        version,
        filter,
        waves,
        minSuccess: Number(minSuccess),
        maxFailure: Number(maxFailure),
        soakSeconds: Number(soak),
        approveWaves: approve,
      };
      const r = await post<Rollout>('/api/v1/rollouts', body);
      await client.invalidateQueries({ queryKey: ['rollouts'] });
      navigate(`/rollouts/${encodeURIComponent(r.id)}`);
    } catch (err) {
      setError(err);
    }
  };
  // The answer shown is for what the form says now, never for what it said a moment ago.
  const fresh = previewKey.filter === filter && previewKey.waves.join() === waves.join();
  if (preview.error instanceof ApiError && preview.error.missingRoute) {
    return (
      <>
        <h1>New rollout</h1>
        <Unavailable what="Rollouts" />
      </>
    );
  }
  return (
    <>
      <p>
        <Link href="/rollouts">← Rollouts</Link>
      </p>
      <h1>New rollout</h1>
      <form className="card form" onSubmit={(e) => void submit(e)}>
        <fieldset>
          <legend>1. Release</legend>
          <ReleasePicker value={release} onChange={setRelease} label="Release" />
        </fieldset>
        <fieldset>
          <legend>2. Devices</legend>
          <label>
            RSQL filter
            <input
              className="mono"
              name="filter"
              value={filter}
              onChange={(e) => setFilter(e.target.value)}
              spellCheck={false}
            />
          </label>
          <label>
            Waves (cumulative percent or device count reached by each wave, comma-separated)
            <input name="waves" value={wavesText} onChange={(e) => setWavesText(e.target.value)} />
          </label>
          <div aria-live="polite" className="preview">
            {!fresh || preview.isFetching ? (
              <p className="muted">Counting…</p>
            ) : preview.isError ? (
              <ErrorNote error={preview.error} />
            ) : preview.data ? (
              <>
                <p>
                  <strong>{preview.data.matched}</strong> devices match.
                </p>
                <BarChart
                  title="Devices per wave"
                  categoryLabel="wave"
                  categories={preview.data.waves.map((w) => `wave ${w.index + 1}`)}
                  series={[{ label: 'devices', values: preview.data.waves.map((w) => w.size) }]}
                  height={160}
                />
              </>
            ) : (
              <p className="muted">Counting…</p>
            )}
          </div>
        </fieldset>
        <fieldset>
          <legend>3. Gates</legend>
          <div className="inline">
            <label>
              Min success %
              <input
                type="number"
                min={0}
                max={100}
                value={minSuccess}
                onChange={(e) => setMinSuccess(e.target.value)}
              />
            </label>
            <label>
              Max failure %
              <input
                type="number"
                min={0}
                max={100}
                value={maxFailure}
                onChange={(e) => setMaxFailure(e.target.value)}
              />
            </label>
            <label>
              Soak seconds
              <input type="number" min={0} value={soak} onChange={(e) => setSoak(e.target.value)} />
            </label>
            <label>
              <input type="checkbox" checked={approve} onChange={(e) => setApprove(e.target.checked)} />{' '}
              Approve each wave by hand
            </label>
          </div>
        </fieldset>
        {error ? <ErrorNote error={error} /> : null}
        <button type="submit" className="primary" disabled={!release || waves.length === 0}>
          Start rollout
        </button>
      </form>
    </>
  );
}

interface Sample {
  t: number;
  percent: number[];
}

export function RolloutPage({ id }: { id: string }) {
  const client = useQueryClient();
  const rollout = useQuery({
    queryKey: ['rollout', id],
    queryFn: () => get<Rollout>(path('/api/v1/rollouts/:id', { id })),
    refetchInterval: (q) => (q.state.data && isFinished(q.state.data.state) ? false : 5000),
  });
  // Progress over time, sampled from each answer (events make the answers arrive as things move).
  const samples = useRef<Sample[]>([]);
  const r = rollout.data;
  if (r) {
    const percent = r.waves.map((w) => wavePercent(w));
    const last = samples.current.at(-1);
    if (!last || last.percent.join() !== percent.join())
      samples.current = [...samples.current, { t: Date.now() / 1000, percent }].slice(-300);
  }
  const act = (what: string) => async () => {
    await post(path(`/api/v1/rollouts/:id/${what}`, { id }));
    await client.invalidateQueries({ queryKey: ['rollout', id] });
  };
  return (
    <>
      <p>
        <Link href="/rollouts">← Rollouts</Link>
      </p>
      <Loaded query={rollout} missing="Rollouts">
        {(r) => (
          <>
            <h1>
              {r.app} {r.version} <Badge tone={tone(r.state)}>{r.state}</Badge>
            </h1>
            <p>
              <span data-testid="rollout-progress">{progressOf(r)} %</span> of{' '}
              {r.waves.reduce((n, w) => n + w.size, 0)} devices updated; wave {r.currentWave + 1} of{' '}
              {r.waves.length}.
              {r.pausedReason ? <span className="warn-text"> Paused: {r.pausedReason}</span> : null}
            </p>
            <RequireRole role="deployer">
              <div className="actions">
                {r.state === 'paused' ? (
                  <ActionButton label="Resume" tone="primary" run={act('resume')} />
                ) : null}
                {!isFinished(r.state) && r.state !== 'paused' ? (
                  <ActionButton label="Pause" run={act('pause')} />
                ) : null}
                {awaitsApproval(r) ? (
                  <ActionButton label="Approve next wave" tone="primary" run={act('approve')} />
                ) : null}
                {!isFinished(r.state) ? (
                  <ActionButton
                    label="Abort"
                    tone="danger"
                    confirm="Abort this rollout? Devices not yet updated stay where they are."
                    run={act('abort')}
                  />
                ) : null}
              </div>
            </RequireRole>
            <Section title="Progress per wave">
              <LineChart
                title="Percent of each wave updated over time"
                times={samples.current.map((s) => s.t)}
                series={r.waves.map((w, i) => ({
                  label: `wave ${w.index + 1}`,
                  values: samples.current.map((s) => s.percent[i] ?? 0),
                }))}
                yMax={100}
              />
              <div className="table-wrap" tabIndex={0}>
                <table className="data">
                  <thead>
                    <tr>
                      <th scope="col">Wave</th>
                      <th scope="col">State</th>
                      <th scope="col">Size</th>
                      {WAVE_STATES.map((s) => (
                        <th scope="col" key={s}>
                          {s}
                        </th>
                      ))}
                    </tr>
                  </thead>
                  <tbody>
                    {r.waves.map((w) => (
                      <tr key={w.index}>
                        <td data-label="Wave">{w.index + 1}</td>
                        <td data-label="State">
                          <Badge tone={tone(w.state)}>{w.state}</Badge>
                        </td>
                        <td data-label="Size">{w.size}</td>
                        {WAVE_STATES.map((s) => (
                          <td key={s} data-label={s}>
                            {w.counts[s] ?? 0}
                          </td>
                        ))}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </Section>
            {r.stats ? (
              <Section title="Statistics">
                <KeyValues
                  rows={[
                    [
                      'Install time p50',
                      r.stats.installP50Ms === null ? '—' : `${(r.stats.installP50Ms / 1000).toFixed(1)} s`,
                    ],
                    [
                      'Install time p95',
                      r.stats.installP95Ms === null ? '—' : `${(r.stats.installP95Ms / 1000).toFixed(1)} s`,
                    ],
                  ]}
                />
                {r.stats.failuresByReason.length > 0 ? (
                  <ul className="plain">
                    {r.stats.failuresByReason.map((f) => (
                      <li key={f.reason}>
                        <code>{f.reason}</code>: {f.count}
                      </li>
                    ))}
                  </ul>
                ) : null}
              </Section>
            ) : null}
            <WhyBox id={id} />
          </>
        )}
      </Loaded>
    </>
  );
}

/** "Why is this device where it is?" for one device of the rollout. */
function WhyBox({ id }: { id: string }) {
  const [deviceId, setDeviceId] = useState(new URLSearchParams(window.location.search).get('device') ?? '');
  const [asked, setAsked] = useState(deviceId);
  const why = useQuery({
    queryKey: ['rollout', id, 'why', asked],
    queryFn: () =>
      get<RolloutWhy>(path('/api/v1/rollouts/:id/devices/:deviceId/why', { id, deviceId: asked })),
    enabled: asked !== '',
    retry: false,
  });
  return (
    <Section title="Why? (one device)">
      <form
        className="inline"
        onSubmit={(e) => {
          e.preventDefault();
          setAsked(deviceId.trim());
        }}
      >
        <label>
          Device id{' '}
          <input
            name="device"
            value={deviceId}
            onChange={(e) => setDeviceId(e.target.value)}
            className="mono"
          />
        </label>
        <button type="submit">Explain</button>
      </form>
      {asked === '' ? null : why.isPending ? (
        <p className="muted">Loading…</p>
      ) : why.isError ? (
        <p className="error" role="alert">
          {errorText(why.error)}
        </p>
      ) : (
        <div role="status" data-testid="why">
          <p>
            <Badge tone={tone(why.data.state)}>{why.data.state}</Badge> <strong>{why.data.text}</strong>
          </p>
          <KeyValues
            rows={[
              ['Reason', why.data.reason === null ? '—' : <code key="r">{why.data.reason}</code>],
              ['Wave', why.data.wave === null ? '—' : String(why.data.wave + 1)],
              ['Since', why.data.since ?? '—'],
              ['Retries', String(why.data.retries)],
              [
                'Device',
                <Link key="d" href={`/devices/${encodeURIComponent(why.data.deviceId)}`}>
                  {why.data.deviceId}
                </Link>,
              ],
            ]}
          />
        </div>
      )}
    </Section>
  );
}
