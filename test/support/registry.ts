import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

import { makeTempDir } from './paths';
import { freePort, waitForPort } from './ports';

/**
 * A real distribution registry (Debian's `docker-registry`) on a free 127.0.0.1 port, with its
 * own temp storage and htpasswd basic auth. `relativeurls` keeps upload Locations relative, so a
 * fault proxy in front of it stays in the path of every request.
 */
export interface TestRegistry {
  /** host:port, as in image references. */
  host: string;
  url: string;
  port: number;
  /** Empty when started with auth: 'none'. */
  username: string;
  password: string;
  storageDir: string;
  /** Everything the registry printed so far (access log included). */
  logs(): string;
  stop(): Promise<void>;
}

export interface StartRegistryOptions {
  auth?: 'htpasswd' | 'none';
  username?: string;
  password?: string;
  /** Keep the registry's blobs in this folder, across runs (the demo's cache); else a temp folder. */
  storageDir?: string;
  /** Listen on this port (image names include it, so a stable port keeps digests stable); else a free one. */
  port?: number;
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const binary = '/usr/bin/docker-registry';
  if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: apt-get install docker-registry`);
  const dir = makeTempDir('registry-');
  const storageDir = opts.storageDir ?? path.join(dir, 'storage');
  fs.mkdirSync(storageDir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const auth = opts.auth ?? 'htpasswd';
  const username = auth === 'none' ? '' : (opts.username ?? 'ci-pusher');
  const password = auth === 'none' ? '' : (opts.password ?? `pw-${crypto.randomBytes(12).toString('hex')}`);
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storageDir}`,
    '  delete:',
    '    enabled: true',
    '  cache:',
    '    blobdescriptor: inmemory',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  relativeurls: true',
    `  secret: ${crypto.randomBytes(16).toString('hex')}`,
  ];
  if (auth === 'htpasswd') {
    const htpasswd = path.join(dir, 'htpasswd');
    // -B bcrypt (the only hash distribution accepts), -b password from argv is fine for a throwaway test user.
    fs.writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', username, password], { encoding: 'utf8' }));
    lines.push('auth:', '  htpasswd:', '    realm: test-registry', `    path: ${htpasswd}`);
  }
  const configFile = path.join(dir, 'config.yml');
  fs.writeFileSync(configFile, lines.join('\n') + '\n');

  let output = '';
  const child: ChildProcess = spawn(binary, ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (output += c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      waitForPort(port, 20_000),
      exited.then(() => {
        throw new Error(`docker-registry exited at start:\n${output}`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    port,
    username,
    password,
    storageDir,
    logs: () => output,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A stand-in for Azure Container Registry's token service in front of a real registry: it
 * answers `/v2/` with a bearer challenge naming its own `/oauth2/token`, exchanges an Entra ID
 * access token for a refresh token at `/oauth2/exchange`, hands out scoped access tokens, and
 * forwards authorised `/v2/` calls to the registry with the registry's basic credentials.
 */
export interface AcrFront {
  host: string;
  url: string;
  /** What the front saw: exchanges (with the tenant asked for), token grants (with scopes), refusals. */
  events: Array<{ kind: 'exchange' | 'token' | 'refused' | 'forward'; detail: string }>;
  stop(): Promise<void>;
}

export async function startAcrFront(opts: {
  registry: TestRegistry;
  entraToken: string | ((token: string) => boolean);
  tenantId?: string;
  anonymousPull?: boolean;
}): Promise<AcrFront> {
  const entraTokenOk = (token: string | null) =>
    !!token && (typeof opts.entraToken === 'string' ? token === opts.entraToken : opts.entraToken(token));
  const refreshTokens = new Set<string>();
  const accessTokens = new Map<string, string[]>();
  const events: AcrFront['events'] = [];
  const upstream = new URL(opts.registry.url);
  const basic = `Basic ${Buffer.from(`${opts.registry.username}:${opts.registry.password}`).toString('base64')}`;
  let host = '';

  const readForm = (req: http.IncomingMessage) =>
    new Promise<URLSearchParams>((resolve) => {
      let body = '';
      req
        .setEncoding('utf8')
        .on('data', (c: string) => (body += c))
        .on('end', () => resolve(new URLSearchParams(body)));
    });
  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const challenge = (res: http.ServerResponse, scope?: string) => {
    res.writeHead(401, {
      'content-type': 'application/json',
      'www-authenticate': `Bearer realm="http://${host}/oauth2/token",service="${host}"${scope ? `,scope="${scope}"` : ''}`,
    });
    res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
  };

  // A rejected handler must not become an unhandled rejection: each request ends in its own answer.
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', `http://${host}`);
    if (req.method === 'POST' && url.pathname === '/oauth2/exchange') {
      const form = await readForm(req);
      if (
        form.get('grant_type') !== 'access_token' ||
        !entraTokenOk(form.get('access_token')) ||
        form.get('service') !== host ||
        (opts.tenantId && form.get('tenant') !== opts.tenantId)
      ) {
        events.push({
          kind: 'refused',
          detail: `exchange grant=${form.get('grant_type')} service=${form.get('service')} tenant=${form.get('tenant')}`,
        });
        return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid Entra ID token' }] });
      }
      const refresh = `acr-refresh-${crypto.randomBytes(16).toString('hex')}`;
      refreshTokens.add(refresh);
      events.push({ kind: 'exchange', detail: `tenant=${form.get('tenant')}` });
      return json(res, 200, { refresh_token: refresh });
    }
    if (req.method === 'POST' && url.pathname === '/oauth2/token') {
      const form = await readForm(req);
      if (form.get('grant_type') !== 'refresh_token' || !refreshTokens.has(form.get('refresh_token') ?? '')) {
        events.push({ kind: 'refused', detail: 'token with an unknown refresh token' });
        return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid refresh token' }] });
      }
      const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      const access = `acr-access-${crypto.randomBytes(16).toString('hex')}`;
      accessTokens.set(access, scopes);
      events.push({ kind: 'token', detail: scopes.join(' ') });
      return json(res, 200, { access_token: access, expires_in: 300 });
    }
    if (req.method === 'GET' && url.pathname === '/oauth2/token') {
      // Docker's token flow (as Docker Hub serves it): basic credentials of the registry, or none for public pulls.
      const requested = url.searchParams.getAll('scope');
      let scopes: string[];
      if (req.headers.authorization === basic) scopes = requested;
      else if (!req.headers.authorization && opts.anonymousPull) {
        scopes = requested.map((s) => s.replace(/:[^:]*$/, ':pull'));
      } else {
        events.push({
          kind: 'refused',
          detail: `GET token ${req.headers.authorization ? 'with wrong credentials' : 'anonymously'}`,
        });
        return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'incorrect username or password' }] });
      }
      const access = `acr-access-${crypto.randomBytes(16).toString('hex')}`;
      accessTokens.set(access, scopes);
      events.push({
        kind: 'token',
        detail: `${req.headers.authorization ? 'basic' : 'anonymous'} ${scopes.join(' ')}`,
      });
      return json(res, 200, { token: access, expires_in: 300 });
    }
    if (!url.pathname.startsWith('/v2/')) return json(res, 404, {});
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const granted = token ? accessTokens.get(token) : undefined;
    if (!granted) return challenge(res);
    // /v2/<name>/(blobs|manifests|tags)/... needs pull, or push for anything that writes.
    const m = /^\/v2\/(.+?)\/(blobs|manifests|tags)\//.exec(url.pathname);
    if (m) {
      const action = req.method === 'GET' || req.method === 'HEAD' ? 'pull' : 'push';
      const ok = granted.some((s) => {
        const [type, name, actions] = s.split(':');
        return type === 'repository' && name === m[1] && actions.split(',').includes(action);
      });
      if (!ok) return challenge(res, `repository:${m[1]}:${action}`);
      const from = url.searchParams.get('from');
      if (from && !granted.some((s) => s.startsWith(`repository:${from}:`)))
        return challenge(res, `repository:${from}:pull`);
    }
    events.push({ kind: 'forward', detail: `${req.method} ${url.pathname}` });
    const headers = { ...req.headers, host: upstream.host, authorization: basic };
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    forward.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(forward);
  };
  const server = http.createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  host = `127.0.0.1:${port}`;
  return {
    host,
    url: `http://${host}`,
    events,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
