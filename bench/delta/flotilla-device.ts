/**
 * A device as the agent is one: the agent's own `UpdateEngine` (state.db, chunk cache, fetch with
 * deltas, staging with reuse of the installed release, journaled switch) fed by an `HttpFetcher`
 * pointed at the real server. The bench assigns releases directly instead of through TUF (the
 * metadata is a few KB and not what is measured) and counts response body bytes on the wire.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HttpFetcher, UpdateEngine, openStateDatabase } from '@flotilla/agent';
import type { ReleaseSpec } from '@flotilla/agent';
import { isAppStatusReport, releaseTargetPath } from '@flotilla/protocol';
import type { UpdateReport } from '@flotilla/protocol';
import { pino } from 'pino';

export interface DeviceUpdate {
  /** Response body bytes. */
  wireBytes: number;
  /** Assignment to the first `installing` report (fetch), then to `committed` (stage .. commit). */
  fetchMs: number;
  applyMs: number;
  totalMs: number;
}

/** A fetch that counts the bytes of every response body it hands on. */
function countingFetch(counter: { bytes: number }): typeof globalThis.fetch {
  return async (input, init) => {
    const response = await globalThis.fetch(input, init);
    if (!response.body) return response;
    const counted = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          counter.bytes += chunk.length;
          controller.enqueue(chunk);
        },
      }),
    );
    return new Response(counted, { status: response.status, headers: response.headers });
  };
}

export class BenchDevice {
  private assigned: ReleaseSpec[] = [];
  private readonly reports: UpdateReport[] = [];
  private readonly counter = { bytes: 0 };

  private constructor(
    readonly dir: string,
    private readonly engine: UpdateEngine,
    private readonly close: () => void,
  ) {}

  /**
   * `dockerHost`: the engine the agent's docker runtime drives (bench/containers). The agent logs
   * at `warn` (`BENCH_LOG=info` for more).
   */
  static async open(
    dir: string,
    server: { base: string; token: string },
    options: { dockerHost?: string } = {},
  ): Promise<BenchDevice> {
    await mkdir(dir, { recursive: true });
    const db = openStateDatabase(join(dir, 'state.db'));
    const engine = await UpdateEngine.open({
      dataDir: dir,
      db,
      logger: pino({ level: process.env.BENCH_LOG ?? 'warn' }),
      ...(options.dockerHost !== undefined && { dockerHost: options.dockerHost }),
    });
    const device = new BenchDevice(dir, engine, () => db.close());
    const fetcher = new HttpFetcher({
      baseUrl: server.base,
      headers: () => Promise.resolve({ authorization: `Bearer ${server.token}` }),
      partialDir: engine.layout.partialDir,
      fetch: countingFetch(device.counter),
    });
    engine.attach({
      // As the agent's TUF assignment: the releases are told ahead, then their root objects fetched.
      assignment: async (_signal, ahead) => {
        ahead?.(device.assigned);
        for (const r of device.assigned)
          if (!(await engine.cache.has(r.root))) await fetcher.fetch([r.root], engine.cache);
        return device.assigned;
      },
      fetcher,
      // Files apps have no process status; only update reports are measured.
      report: (r) => {
        if (!isAppStatusReport(r)) device.reports.push(r);
      },
    });
    return device;
  }

  /** Installs `root` as `app@version` (a files app unless `as` says otherwise) and measures it. */
  async install(
    app: string,
    version: string,
    root: string,
    as: Pick<ReleaseSpec, 'runtime' | 'config'> = { runtime: 'files', config: { files: {} } },
  ): Promise<DeviceUpdate> {
    const release: ReleaseSpec = {
      app,
      version,
      runtime: as.runtime,
      root,
      targetPath: releaseTargetPath(app, version, root),
      config: as.config,
    };
    this.assigned = [release];
    this.reports.length = 0;
    const bytesBefore = this.counter.bytes;
    const started = Date.now();
    const converged = await this.engine.converge(new AbortController().signal);
    const totalMs = Date.now() - started;
    const at = (phase: UpdateReport['phase']) => {
      const report = this.reports.find((r) => r.phase === phase && r.targetPath === release.targetPath);
      return report?.at ? Date.parse(report.at) : NaN;
    };
    const failed = this.reports.find((r) => r.error);
    if (!converged || this.engine.records.installed(app).current?.root !== root)
      throw new Error(
        `the device did not install ${app}@${version}: ${JSON.stringify(failed?.error ?? null)}`,
      );
    const installing = at('installing');
    return {
      wireBytes: this.counter.bytes - bytesBefore,
      fetchMs: installing - started,
      applyMs: at('committed') - installing,
      totalMs,
    };
  }

  /** The phases the last install reported, each with the ms since the one before (`verifying +12`). */
  phaseTimes(): string[] {
    let last = NaN;
    return this.reports.map((r) => {
      const at = r.at ? Date.parse(r.at) : NaN;
      const since = Number.isNaN(last) ? '' : ` +${at - last}`;
      last = at;
      return `${r.phase}${since}`;
    });
  }

  async remove(): Promise<void> {
    await this.engine.close();
    this.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}
