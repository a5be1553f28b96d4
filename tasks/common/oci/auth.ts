import { TaskError } from '../errors';
import { registerSecret, scrub } from '../secrets';
import { type BufferedResponse, requestBuffered } from './http';

/**
 * Registry auth as docker and go-containerregistry do it: ping `/v2/`, read the
 * `WWW-Authenticate` challenge, then either send basic credentials or get a bearer token for
 * the scopes at hand (cached per scope set). ACR tokens come from an Entra access token:
 * `POST /oauth2/exchange` gives a refresh token, `POST /oauth2/token` an access token.
 */

export type RegistryCredential =
  | { kind: 'anonymous' }
  /** `source` says where the credentials come from, for error messages: "service connection 'x'". */
  | { kind: 'basic'; username: string; password: string; source: string }
  | { kind: 'entra'; source: string; tenantId?: string; getEntraToken: () => Promise<string> };

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** `Bearer realm="https://x/token",service="x",scope="a:b:c,d"` → scheme and parameters. */
export function parseChallenges(header: string | undefined): Challenge[] {
  const challenges: Challenge[] = [];
  if (!header) return challenges;
  let i = 0;
  const skip = (chars: RegExp) => {
    while (i < header.length && chars.test(header[i])) i++;
  };
  while (i < header.length) {
    skip(/[\s,]/);
    const start = i;
    skip(/[A-Za-z0-9_.-]/);
    if (i === start) {
      i++;
      continue;
    }
    const token = header.slice(start, i);
    skip(/\s/);
    if (header[i] !== '=') {
      challenges.push({ scheme: token.toLowerCase(), params: {} });
      continue;
    }
    i++;
    skip(/\s/);
    let value = '';
    if (header[i] === '"') {
      i++;
      while (i < header.length && header[i] !== '"') {
        if (header[i] === '\\' && i + 1 < header.length) i++;
        value += header[i++];
      }
      i++;
    } else {
      const from = i;
      skip(/[^,\s]/);
      value = header.slice(from, i);
    }
    const current = challenges[challenges.length - 1];
    if (current) current.params[token.toLowerCase()] = value;
  }
  return challenges;
}

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

export class RegistryAuthError extends TaskError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'RegistryAuthError';
  }
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

export function describeCredential(credential: RegistryCredential): string {
  return credential.kind === 'anonymous' ? 'no credentials (anonymous)' : `the credentials of ${credential.source}`;
}

export class RegistryAuth {
  private challenge: Challenge | null | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private refreshToken?: string;

  constructor(
    readonly host: string,
    private readonly baseUrl: URL,
    readonly credential: RegistryCredential,
    private readonly now: () => number = Date.now,
  ) {}

  /** The Authorization header for a request needing `scopes`, or undefined when none is needed. */
  async authorization(scopes: readonly string[]): Promise<string | undefined> {
    if (this.challenge === undefined) await this.ping();
    const challenge = this.challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') return this.basicHeader();
    if (challenge.scheme === 'bearer') return `Bearer ${await this.bearerToken(challenge, scopes)}`;
    throw new RegistryAuthError(
      `Registry ${this.host} asks for '${challenge.scheme}' authentication, which is not supported (basic and bearer are).`,
      401,
    );
  }

  /**
   * After a 401: re-read the challenge it carried and forget the cached token. True when a
   * second try may succeed (a bearer token that expired or lacked a scope); false when the
   * same credentials were simply refused.
   */
  invalidate(res: BufferedResponse | { header(name: string): string | undefined }, scopes: readonly string[]): boolean {
    const [challenge] = parseChallenges(res.header('www-authenticate'));
    const hadToken = this.tokens.delete(scopeKey(scopes));
    if (!challenge) return false;
    const changed = this.challenge?.scheme !== challenge.scheme;
    this.challenge = { scheme: challenge.scheme, params: { ...(this.challenge?.params ?? {}), ...challenge.params } };
    return changed || (challenge.scheme === 'bearer' && hadToken);
  }

  private async ping(): Promise<void> {
    const res = await requestBuffered({ method: 'GET', url: new URL('/v2/', this.baseUrl) });
    if (res.status === 200) {
      this.challenge = null;
      return;
    }
    if (res.status !== 401) {
      throw new TaskError(
        `Registry ${this.host} did not answer like a container registry: GET /v2/ gave HTTP ${res.status}. Check the registry address.`,
      );
    }
    const [challenge] = parseChallenges(res.header('www-authenticate'));
    this.challenge = challenge ?? { scheme: 'basic', params: {} };
  }

  private basicHeader(): string {
    const c = this.credential;
    if (c.kind === 'basic')
      return `Basic ${registerSecret(Buffer.from(`${c.username}:${c.password}`).toString('base64'))}`;
    if (c.kind === 'anonymous') {
      throw new RegistryAuthError(
        `Registry ${this.host} needs a user name and password, and none was given. Use a Docker registry service connection for ${this.host}.`,
        401,
      );
    }
    throw new RegistryAuthError(
      `Registry ${this.host} asks for basic authentication, which an Azure Resource Manager connection cannot give. Use a Docker registry service connection for ${this.host}.`,
      401,
    );
  }

  private async bearerToken(challenge: Challenge, scopes: readonly string[]): Promise<string> {
    const key = scopeKey(scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt - 30_000 > this.now()) return cached.token;
    const realm = challenge.params.realm;
    if (!realm)
      throw new RegistryAuthError(
        `Registry ${this.host} asked for a bearer token but named no token service (realm).`,
        401,
      );
    const service = challenge.params.service ?? this.host;
    const token =
      this.credential.kind === 'entra'
        ? await this.entraRegistryToken(realm, service, scopes)
        : await this.distributionToken(realm, service, scopes);
    this.tokens.set(key, token);
    return token.token;
  }

  /** Docker's token flow: GET realm?service&scope, with basic credentials when we have them. */
  private async distributionToken(realm: string, service: string, scopes: readonly string[]): Promise<CachedToken> {
    const url = new URL(realm);
    url.searchParams.set('service', service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = {};
    if (this.credential.kind === 'basic') headers.authorization = this.basicHeader();
    const res = await requestBuffered({ method: 'GET', url, headers });
    return this.tokenFrom(res, url, 'token');
  }

  /** ACR: exchange the Entra token for a refresh token once, then get access tokens per scope set. */
  private async entraRegistryToken(realm: string, service: string, scopes: readonly string[]): Promise<CachedToken> {
    const c = this.credential as Extract<RegistryCredential, { kind: 'entra' }>;
    const realmUrl = new URL(realm);
    if (!this.refreshToken) {
      const entraToken = registerSecret(await c.getEntraToken());
      const form = new URLSearchParams({ grant_type: 'access_token', service, access_token: entraToken });
      if (c.tenantId) form.set('tenant', c.tenantId);
      const exchangeUrl = new URL('/oauth2/exchange', realmUrl);
      const res = await requestBuffered({
        method: 'POST',
        url: exchangeUrl,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(form.toString()),
      });
      if (res.status !== 200) {
        throw new RegistryAuthError(
          `Registry ${this.host} refused the Entra ID token of ${c.source} at /oauth2/exchange (HTTP ${res.status}${errorDetail(res)}). Check that the registry is an Azure Container Registry and that the service connection's identity has the AcrPush role on it.`,
          res.status,
        );
      }
      const body = parseJson(res.body) as { refresh_token?: string };
      if (!body.refresh_token)
        throw new RegistryAuthError(
          `Registry ${this.host} answered /oauth2/exchange with no refresh token.`,
          res.status,
        );
      this.refreshToken = registerSecret(body.refresh_token);
    }
    const form = new URLSearchParams({
      grant_type: 'refresh_token',
      service,
      scope: scopes.join(' '),
      refresh_token: this.refreshToken,
    });
    const res = await requestBuffered({
      method: 'POST',
      url: realmUrl,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: Buffer.from(form.toString()),
    });
    return this.tokenFrom(res, realmUrl, 'access_token');
  }

  private tokenFrom(res: BufferedResponse, url: URL, field: 'token' | 'access_token'): CachedToken {
    if (res.status === 401 || res.status === 403) {
      throw new RegistryAuthError(
        `Registry ${this.host} refused ${describeCredential(this.credential)} (HTTP ${res.status} from its token service ${url.origin}${url.pathname}${errorDetail(res)}). Check the user name and password, or the identity's permissions on the repository.`,
        res.status,
      );
    }
    if (res.status !== 200)
      throw new TaskError(
        `The token service of registry ${this.host} (${url.origin}${url.pathname}) answered HTTP ${res.status}${errorDetail(res)}.`,
      );
    const body = parseJson(res.body) as { token?: string; access_token?: string; expires_in?: number };
    const token = body[field] ?? body.token ?? body.access_token;
    if (!token) throw new TaskError(`The token service of registry ${this.host} answered with no token.`);
    registerSecret(token);
    // Tokens without expires_in last 60 s by the distribution spec.
    return { token, expiresAt: this.now() + (body.expires_in ?? 60) * 1000 };
  }
}

function scopeKey(scopes: readonly string[]): string {
  return [...scopes].sort().join(' ');
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return {};
  }
}

/** The registry's own error text (distribution's {errors:[{code,message}]}), scrubbed and short. */
export function errorDetail(res: { body?: Buffer }): string {
  if (!res.body?.length) return '';
  const text = res.body.toString('utf8');
  let detail = text;
  try {
    const parsed = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    if (parsed.errors?.length)
      detail = parsed.errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
  } catch {
    /* plain text */
  }
  detail = scrub(detail.replace(/\s+/g, ' ').trim()).slice(0, 300);
  return detail ? `: ${detail}` : '';
}
