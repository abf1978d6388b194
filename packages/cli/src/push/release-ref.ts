import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { AppName, FlotillaError, ReleaseVersion } from '@flotilla/protocol';

// A boolean rather than Value.Check's type guard, which narrows the refused string to never.
const isValid = (schema: TSchema, value: string): boolean => Value.Check(schema, value);

export interface ReleaseRef {
  app: string;
  version: string;
}

/** Checks an app name; FLT_VALIDATION (exit 1) with what is allowed. */
export function checkAppName(app: string): string {
  if (!isValid(AppName, app)) {
    throw new FlotillaError(
      'FLT_VALIDATION',
      `invalid app name "${app}": letters, digits and _ . + - (starting with a letter or digit), at most 128`,
    );
  }
  return app;
}

export function checkVersion(version: string): string {
  if (!isValid(ReleaseVersion, version)) {
    throw new FlotillaError(
      'FLT_VALIDATION',
      `invalid version "${version}": letters, digits and _ . + - (starting with a letter or digit), ` +
        'at most 128, e.g. 1.4.0',
    );
  }
  return version;
}

/** `web@1.4.0` → { app: 'web', version: '1.4.0' }. */
export function parseReleaseRef(text: string): ReleaseRef {
  const at = text.lastIndexOf('@');
  if (at <= 0 || at === text.length - 1) {
    throw new FlotillaError(
      'FLT_VALIDATION',
      `"${text}" is not a release: write it as APP@VERSION, e.g. web@1.4.0`,
    );
  }
  return { app: checkAppName(text.slice(0, at)), version: checkVersion(text.slice(at + 1)) };
}
