/** The real importer: the registry client pulls the layers, the converter writes the squashfs. */
import { convertImage } from '../convert/convert.js';
import { pullImage } from '../registry/pull.js';
import type { ImageImporter, ImportRequest, ImportResult } from './importer.js';

export function registryImporter(): ImageImporter {
  return {
    async import(req: ImportRequest): Promise<ImportResult> {
      const layerBytes = new Map<string, [number, number]>();
      const pulled = await pullImage(
        { registry: null, repository: req.repository, tag: req.tag, digest: null },
        {
          location: { url: req.location.url, auth: req.location.auth },
          platform: { architecture: req.arch },
          cacheDir: req.blobCacheDir,
          signal: req.signal,
          onProgress: (p) => {
            // Layers arrive several at once: the fraction is over all of them.
            if (p.phase === 'layer') {
              layerBytes.set(p.digest, [p.bytes, p.totalBytes]);
              let got = 0;
              let total = 0;
              for (const [b, t] of layerBytes.values()) {
                got += b;
                total += t;
              }
              if (total > 0) req.onProgress('pulling', Math.min(1, got / total));
            } else if (p.phase === 'done') req.onProgress('pulling', 1);
          },
        },
      );
      const base = (await req.conversionCache?.findBase(pulled.layers.map((l) => l.digest))) ?? null;
      const converted = await convertImage(pulled.layers, {
        base,
        outDir: req.workDir,
        outName: 'image.sqfs',
        allowDevices: req.platform.allowDevices,
        ...(req.sink && { sink: req.sink }),
        signal: req.signal,
        onProgress: (p) => {
          if (p.phase === 'layer') req.onProgress('converting', (p.index / Math.max(1, p.count)) * 0.8);
          else req.onProgress('converting', 0.9);
        },
      }).finally(() => base?.close());
      return {
        squashfsPath: converted.squashfsPath,
        manifestDigest: pulled.manifestDigest,
        squashfsSha256: converted.squashfsSha256,
        ...(converted.tree && { treeRoot: converted.tree.root }),
        index: converted.index,
        reusedFrom: converted.reused.base,
      };
    },
  };
}
