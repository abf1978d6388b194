/** The short text `flotilla up` prints once everything runs. */
export function upBanner(info: {
  url: string;
  adminUsername: string;
  generatedPassword: string | null;
  credentialsPath: string | null;
  dataDir: string;
  /** Whether the web dashboard is served at `/` (it is when it was built). */
  dashboard?: boolean;
}): string {
  const lines = ['', `Flotilla is running at ${info.url}`];
  lines.push(
    info.dashboard
      ? `  dashboard:    ${info.url}/   (sign in as ${info.adminUsername})`
      : '  dashboard:    not built (npm run build -w packages/web)',
  );
  lines.push(`  admin user:   ${info.adminUsername}`);
  if (info.generatedPassword !== null) {
    lines.push(`  password:     ${info.generatedPassword}   (generated; shown only this once)`);
  }
  lines.push(
    info.credentialsPath
      ? `  credentials:  ${info.credentialsPath}`
      : '  credentials:  none stored; run `flotilla login --server ' +
          info.url +
          ' --user ' +
          info.adminUsername +
          ' --password-stdin`',
    `  data:         ${info.dataDir}`,
    '',
    'Next:',
    '  flotilla devices ls',
    '  flotilla regkeys create --name lab --tags lab     (a key for other machines)',
    '',
    'Stop with Ctrl-C.',
    '',
  );
  return lines.join('\n');
}
