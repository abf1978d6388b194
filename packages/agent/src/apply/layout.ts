/** The agent's app directories (docs/updates.md "Disk layout"). */
import { join } from 'node:path';
import type { AppContext } from '../runtimes/runtime.js';
import type { ReleaseSpec } from '../model/release.js';

export class AppLayout {
  constructor(readonly dataDir: string) {}

  get chunksDir(): string {
    return join(this.dataDir, 'chunks');
  }

  get partialDir(): string {
    return join(this.dataDir, 'chunks', 'partial');
  }

  appDir(app: string): string {
    return join(this.dataDir, 'apps', app);
  }

  releasesDir(app: string): string {
    return join(this.appDir(app), 'releases');
  }

  releaseDir(app: string, root: string): string {
    return join(this.releasesDir(app), root);
  }

  currentLink(app: string): string {
    return join(this.appDir(app), 'current');
  }

  context(release: ReleaseSpec): AppContext {
    const appDir = this.appDir(release.app);
    return {
      app: release.app,
      release,
      appDir,
      releaseDir: this.releaseDir(release.app, release.root),
      currentLink: this.currentLink(release.app),
      dataDir: join(appDir, 'data'),
      logDir: join(appDir, 'logs'),
    };
  }
}
