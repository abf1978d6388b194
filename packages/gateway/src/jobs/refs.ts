/** `[LOCATION/]NAME[:TAG]` → location, repository and tag; the canonical form is `LOCATION/NAME:TAG`. */
import { FlotillaError } from '@flotilla/protocol';
import type { GatewayConfig, LocationConfig } from '../config/config.js';

export interface ParsedImageRef {
  location: LocationConfig;
  repository: string;
  tag: string;
  /** `LOCATION/REPOSITORY:TAG`. */
  canonical: string;
}

export function parseImageRef(config: GatewayConfig, ref: string): ParsedImageRef {
  const colon = ref.lastIndexOf(':');
  const slash = ref.lastIndexOf('/');
  const hasTag = colon > slash;
  const path = hasTag ? ref.slice(0, colon) : ref;
  const tag = hasTag ? ref.slice(colon + 1) : 'latest';
  const first = path.split('/')[0] ?? '';
  const named = path.includes('/') && Object.hasOwn(config.locations, first);
  const locationName = named ? first : config.defaultLocation;
  const location = config.locations[locationName];
  if (location === undefined) {
    throw new FlotillaError(
      'FLT_IMAGE_LOCATION_UNKNOWN',
      locationName === ''
        ? 'no image location is configured (gateway configuration "locations")'
        : `no image location named ${locationName}`,
    );
  }
  let repository = named ? path.slice(first.length + 1) : path;
  if (repository === '' || tag === '')
    throw new FlotillaError('FLT_VALIDATION', `not an image reference: ${ref}`);
  // Docker Hub's convention, harmless elsewhere: a one-part name lives under library/.
  if (!repository.includes('/') && /(^|\.)docker\.io$/.test(new URL(location.url).hostname))
    repository = `library/${repository}`;
  return { location, repository, tag, canonical: `${location.name}/${repository}:${tag}` };
}
