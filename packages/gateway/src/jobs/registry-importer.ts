/** The real importer: the registry client pulls the layers, the converter writes the squashfs. */
import { convertImage } from '../convert/convert.js';
import { pullImage } from '../registry/pull.js';
import type { ImageImporter, ImportRequest, ImportResult } from './importer.js';

export function registryImporter(): ImageImporter {
  return {
    async import(req: ImportRequest): Promise<ImportResult> {
      const pulled = await pullImage(
        { registry: null, repository: req.repository, tag: req.tag, digest: null },
        {
          location: { url: req.location.url, auth: req.location.auth },
          platform: { architecture: req.arch },
          cacheDir: req.blobCacheDir,
          signal: req.signal,
          onProgress: (p) => {
            if (p.phase === 'layer' && p.totalBytes > 0)
              req.onProgress('pulling', Math.min(1, p.bytes / p.totalBytes));
            else if (p.phase === 'done') req.onProgress('pulling', 1);
          },
        },
      );
      const converted = await convertImage(pulled.layers, {
        outDir: req.workDir,
        outName: 'image.sqfs',
        allowDevices: req.platform.allowDevices,
        ...(req.sink && { sink: req.sink }),
        signal: req.signal,
        onProgress: (p) => {
          if (p.phase === 'layer') req.onProgress('converting', (p.index / Math.max(1, p.count)) * 0.8);
          else req.onProgress('converting', 0.9);
        },
      });
      return {
        squashfsPath: converted.squashfsPath,
        manifestDigest: pulled.manifestDigest,
        squashfsSha256: converted.squashfsSha256,
        ...(converted.tree && { treeRoot: converted.tree.root }),
      };
    },
  };
}
