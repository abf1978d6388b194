/** The two-service compose app of the docker runtime tests (an HTTP server and a worker). */
import type { DockerRuntimeConfig } from '@flotilla/protocol';

export interface ShopOptions {
  imageId: string;
  port: number;
  /** What the web service serves at `/`. */
  message: string;
  /** The worker's environment value (a change recreates only the worker). */
  worker: string;
  /** A healthcheck that never passes. */
  failingHealth?: boolean;
  windowMs?: number;
}

export function shopConfig(o: ShopOptions): DockerRuntimeConfig {
  return {
    docker: {
      compose: {
        services: {
          web: {
            image: 'shop/bb:1',
            command: [
              'sh',
              '-c',
              'mkdir -p /www && echo "$MSG" > /www/index.html && date >> /data/web-starts && exec httpd -f -p 8080 -h /www',
            ],
            environment: { MSG: o.message },
            ports: [{ target: 8080, published: o.port, host_ip: '127.0.0.1' }],
            volumes: [{ type: 'volume', source: 'data', target: '/data' }],
            healthcheck: {
              test: o.failingHealth
                ? ['CMD', 'false']
                : ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/'],
              interval_ms: 300,
              timeout_ms: 2000,
              retries: 2,
            },
            restart: 'unless-stopped',
          },
          worker: {
            image: 'shop/bb:1',
            command: ['sh', '-c', 'while true; do echo "tick $W"; sleep 0.3; done'],
            environment: { W: o.worker },
            volumes: [{ type: 'volume', source: 'data', target: '/data' }],
            depends_on: { web: { condition: 'service_healthy' } },
            logging: { driver: 'json-file', options: { 'max-size': '1m', 'max-file': '2' } },
          },
        },
        volumes: ['data'],
      },
      images: { 'shop/bb:1': o.imageId },
      health: { windowMs: o.windowMs ?? 1500, timeoutMs: 20_000 },
      stopTimeoutS: 1,
    },
  };
}

/** GET http://127.0.0.1:port/ → body, or null when nothing answers. */
export async function getBody(port: number, host = '127.0.0.1'): Promise<string | null> {
  try {
    const res = await fetch(`http://${host}:${port}/`, { signal: AbortSignal.timeout(3000) });
    return (await res.text()).trim();
  } catch {
    return null;
  }
}

/**
 * One web service serving `message` on port 8080 of its address on the app network (no host port:
 * test files run in parallel, and a published port picked by freePort could race another file's).
 */
export function webConfig(imageId: string, message: string, command?: string[]): DockerRuntimeConfig {
  return {
    docker: {
      compose: {
        services: {
          web: {
            image: 'bb',
            command: command ?? [
              'sh',
              '-c',
              'trap "exit 0" TERM; mkdir -p /www && echo "$MSG" > /www/index.html && httpd -f -p 8080 -h /www & wait',
            ],
            environment: { MSG: message },
          },
        },
      },
      images: { bb: imageId },
      health: { windowMs: 300, timeoutMs: 15_000 },
      stopTimeoutS: 1,
    },
  };
}
