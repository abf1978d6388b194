/** A compose service (normalized, protocol DockerService) → the Engine API's container create options. */
import { join } from 'node:path';
import type { DockerService } from '@flotilla/protocol';
import type Docker from 'dockerode';
import { LABEL, sha256Hex, stableJson } from './engine.js';
import type { Names } from './engine.js';

export interface ServicePlan {
  service: string;
  /** Hash of everything the container is created from: a change recreates it. */
  hash: string;
  options: Docker.ContainerCreateOptions;
}

const NS_PER_MS = 1_000_000;

export function serviceSpec(
  names: Names,
  ctx: { app: string; dataDir: string; release: { root: string } },
  service: string,
  def: DockerService,
  imageId: string,
  stopTimeoutS: number,
): ServicePlan {
  const network = names.network(ctx.app);
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp?: string; HostPort?: string }[]> = {};
  for (const p of def.ports ?? []) {
    const key = `${p.target}/${p.protocol ?? 'tcp'}`;
    exposed[key] = {};
    (bindings[key] ??= []).push({
      HostIp: p.host_ip ?? '',
      HostPort: p.published === undefined ? '' : String(p.published),
    });
  }
  const mounts = (def.volumes ?? []).map((v) =>
    v.type === 'volume'
      ? {
          Type: 'volume' as const,
          Source: names.volume(ctx.app, v.source),
          Target: v.target,
          ReadOnly: v.read_only ?? false,
        }
      : {
          Type: 'bind' as const,
          Source: join(ctx.dataDir, v.source),
          Target: v.target,
          ReadOnly: v.read_only ?? false,
        },
  );
  const hc = def.healthcheck;
  const body = {
    Image: imageId,
    Cmd: def.command,
    Entrypoint: def.entrypoint,
    Env: Object.entries(def.environment ?? {}).map(([k, v]) => `${k}=${v}`),
    User: def.user,
    WorkingDir: def.working_dir,
    ExposedPorts: exposed,
    StopTimeout: stopTimeoutS,
    Healthcheck: hc && {
      Test: hc.test,
      Interval: hc.interval_ms === undefined ? undefined : hc.interval_ms * NS_PER_MS,
      Timeout: hc.timeout_ms === undefined ? undefined : hc.timeout_ms * NS_PER_MS,
      StartPeriod: hc.start_period_ms === undefined ? undefined : hc.start_period_ms * NS_PER_MS,
      Retries: hc.retries,
    },
    HostConfig: {
      NetworkMode: network,
      PortBindings: bindings,
      Mounts: mounts,
      RestartPolicy: { Name: def.restart ?? 'no' },
      CapAdd: def.cap_add,
      CapDrop: def.cap_drop,
      Devices: def.devices?.map((d) => ({
        PathOnHost: d.source,
        PathInContainer: d.target,
        CgroupPermissions: d.permissions ?? 'rwm',
      })),
      LogConfig: def.logging && {
        Type: def.logging.driver ?? 'json-file',
        Config: def.logging.options ?? {},
      },
    },
    NetworkingConfig: { EndpointsConfig: { [network]: { Aliases: [service] } } },
  };
  const hash = sha256Hex(stableJson(body));
  const options = {
    ...body,
    name: names.container(ctx.app, service),
    Labels: {
      ...def.labels,
      [LABEL.owner]: names.owner,
      [LABEL.app]: ctx.app,
      [LABEL.service]: service,
      [LABEL.release]: ctx.release.root,
      [LABEL.hash]: hash,
    },
  } as Docker.ContainerCreateOptions;
  return { service, hash, options };
}
