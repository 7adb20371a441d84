// The operator's relay setting (operator configuration only, never a user-written object):
//   CLOUDNET_RELAY_API=https://relay-send.cloudnet-system:9443
//       the registration API of the one sender relay that carries migrations to every target Site;
//   CLOUDNET_RELAY_API=site-b=https://10.0.0.7:9443,site-c=https://10.0.0.8:9443
//       one sender relay per target Site (a sender has one --peer, so one per site pair); a bare URL
//       among them applies to the Sites not named. unix:///PATH reaches a relay on the same host.
//   CLOUDNET_RELAY_API_TOKEN_FILE  the bearer token (the relay's Secret, mounted), required;
//   CLOUDNET_RELAY_API_CA_FILE     the CA of the relays' API certificates (https).
import fs from 'node:fs';

export const RELAY_API_ENV = 'CLOUDNET_RELAY_API';
export const RELAY_API_TOKEN_FILE_ENV = 'CLOUDNET_RELAY_API_TOKEN_FILE';
export const RELAY_API_CA_FILE_ENV = 'CLOUDNET_RELAY_API_CA_FILE';

export interface RelayApiSetting {
  /** Site name → API URL. */
  bySite: ReadonlyMap<string, string>;
  /** For Sites not in bySite. */
  fallback?: string;
}

function checkUrl(s: string, whole: string): string {
  let u: URL;
  try { u = new URL(s); } catch { throw new Error(`relay API URL ${JSON.stringify(s)} in ${JSON.stringify(whole)} is not a URL`); }
  if (u.protocol !== 'https:' && u.protocol !== 'unix:') throw new Error(`relay API URL ${s} must be https:// or unix:// (the API is token-authenticated; no plain HTTP)`);
  return s;
}

/** Parses `URL` or `SITE=URL[,SITE=URL...][,URL]` (commas or whitespace between entries). */
export function parseRelayApiSetting(value: string): RelayApiSetting {
  const bySite = new Map<string, string>();
  let fallback: string | undefined;
  for (const entry of value.split(/[\s,]+/).filter(Boolean)) {
    const m = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)=(.+)$/.exec(entry);
    if (m) {
      if (bySite.has(m[1])) throw new Error(`relay API URL for Site ${m[1]} given twice`);
      bySite.set(m[1], checkUrl(m[3], value));
    } else {
      if (fallback) throw new Error(`more than one relay API URL without a Site name in ${JSON.stringify(value)}`);
      fallback = checkUrl(entry, value);
    }
  }
  if (!bySite.size && !fallback) throw new Error('empty relay API setting');
  return { bySite, ...(fallback ? { fallback } : {}) };
}

export function relayFor(setting: RelayApiSetting): (site: string) => string | undefined {
  return (site) => setting.bySite.get(site) ?? setting.fallback;
}

export interface RelayConfig {
  setting: RelayApiSetting;
  token: string;
  ca?: Buffer;
}

/** The relay configuration from the environment; undefined when no relay is configured. */
export function relayConfigFromEnv(env: NodeJS.ProcessEnv): RelayConfig | undefined {
  const value = env[RELAY_API_ENV];
  if (!value) return undefined;
  const setting = parseRelayApiSetting(value);
  const tokenFile = env[RELAY_API_TOKEN_FILE_ENV];
  if (!tokenFile) throw new Error(`${RELAY_API_ENV} needs ${RELAY_API_TOKEN_FILE_ENV} (the relay API's bearer token)`);
  const token = fs.readFileSync(tokenFile, 'utf8').trim();
  const caFile = env[RELAY_API_CA_FILE_ENV];
  return { setting, token, ...(caFile ? { ca: fs.readFileSync(caFile) } : {}) };
}
