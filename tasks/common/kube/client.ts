import './quietPunycodeWarning';

import * as http from 'node:http';
import * as https from 'node:https';

import type { KubeConfig } from '@kubernetes/client-node';

import { TaskError } from '../errors';
import { isTransientError, isTransientStatus, parseRetryAfter, TransientHttpError, withRetry } from '../retry';
import { registerSecret, scrub } from '../secrets';
import type { KubeObject, WatchEvent } from './objects';

/** The metav1.Status body the API server answers errors with. */
interface StatusBody {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { causes?: Array<{ field?: string; message?: string }> };
}

/** An error answer from the API server; user-fixable (a bad manifest, missing rights), so one line. */
export class KubeApiError extends TaskError {
  constructor(
    readonly status: number,
    readonly reason: string,
    readonly apiMessage: string,
    readonly request: string,
  ) {
    super(`${request} was refused: HTTP ${status}${reason ? ` ${reason}` : ''}: ${apiMessage}`);
    this.name = 'KubeApiError';
  }
}

export interface KubeRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /** Per-attempt timeout; watches pass 0 (none) and rely on the server's timeoutSeconds. */
  timeoutMs?: number;
}

/** TLS and credentials for one API server, taken once from a kubeconfig context. */
export interface ClusterAccess {
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized: boolean;
  servername?: string;
  headers: Record<string, string>;
}

/** Reads what a request needs from the kubeconfig's current context (client-node does the auth plumbing: tokens, certs, exec plugins). */
export async function clusterAccessOf(kubeConfig: KubeConfig): Promise<ClusterAccess> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new TaskError(`The kubeconfig's context '${kubeConfig.getCurrentContext()}' names no cluster.`);
  const opts: https.RequestOptions & { headers: Record<string, string> } = { headers: {} };
  await kubeConfig.applyToHTTPSOptions(opts);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.headers)) if (typeof v === 'string') headers[k] = v;
  if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
  const authorization = headers.Authorization;
  if (authorization) registerSecret(authorization.replace(/^(Bearer|Basic)\s+/i, ''));
  // applyToHTTPSOptions sets the client key as one Buffer or string (a kubeconfig holds one key).
  const key = opts.key ? Buffer.from(opts.key as Buffer) : undefined;
  if (key) registerSecret(key.toString('utf8'));
  return {
    server: cluster.server.replace(/\/+$/, ''),
    ca: opts.ca ? Buffer.from(opts.ca as Buffer) : undefined,
    cert: opts.cert ? Buffer.from(opts.cert as Buffer) : undefined,
    key,
    rejectUnauthorized: opts.rejectUnauthorized !== false,
    servername: opts.servername,
    headers,
  };
}

function queryString(query: KubeRequest['query']): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : '';
}

/**
 * A small REST client for the Kubernetes API: the real paths, server-side apply, watch streams.
 * Transient faults (429, 5xx, resets) are retried; every request is counted, which is how the
 * task reports how many calls a deploy took.
 */
export class KubeClient {
  private readonly agent: http.Agent;
  private readonly base: URL;
  requestCount = 0;

  constructor(readonly access: ClusterAccess) {
    this.base = new URL(access.server);
    this.agent =
      this.base.protocol === 'http:'
        ? new http.Agent({ keepAlive: true })
        : new https.Agent({
            keepAlive: true,
            ca: access.ca,
            cert: access.cert,
            key: access.key,
            rejectUnauthorized: access.rejectUnauthorized,
            servername: access.servername,
          });
  }

  static async fromKubeConfig(kubeConfig: KubeConfig): Promise<KubeClient> {
    return new KubeClient(await clusterAccessOf(kubeConfig));
  }

  get server(): string {
    return this.access.server;
  }

  close(): void {
    this.agent.destroy();
  }

  /** One HTTP exchange, no retry, any status; e.g. through the API server's service proxy. */
  exchange(
    req: KubeRequest & { headers?: Record<string, string> },
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
    this.requestCount++;
    const url = new URL(this.base.pathname.replace(/\/+$/, '') + req.path + queryString(req.query), this.base);
    const payload =
      req.body === undefined
        ? undefined
        : Buffer.from(typeof req.body === 'string' ? req.body : JSON.stringify(req.body));
    const transport = url.protocol === 'http:' ? http : https;
    return new Promise((resolve, reject) => {
      const request = transport.request(
        url,
        {
          method: req.method,
          agent: this.agent,
          headers: {
            ...this.access.headers,
            Accept: 'application/json',
            'User-Agent': 'model-delivery-DeployToAKS/1',
            ...req.headers,
            ...(payload
              ? { 'Content-Type': req.contentType ?? 'application/json', 'Content-Length': payload.length }
              : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      const timeoutMs = req.timeoutMs ?? 30_000;
      if (timeoutMs > 0)
        request.setTimeout(timeoutMs, () =>
          request.destroy(
            Object.assign(new Error(`${req.method} ${req.path} timed out after ${timeoutMs} ms`), {
              code: 'ETIMEDOUT',
            }),
          ),
        );
      request.on('error', reject);
      request.end(payload);
    });
  }

  private describe(req: KubeRequest): string {
    return `${req.method} ${req.path}`;
  }

  /** Sends with bounded retry; returns the parsed JSON body of a 2xx answer, or throws KubeApiError. */
  async request<T>(req: KubeRequest, opts: { notFoundOk?: boolean } = {}): Promise<T | undefined> {
    const what = this.describe(req);
    return withRetry(
      async () => {
        let res;
        try {
          res = await this.exchange(req);
        } catch (err) {
          if (isTransientError(err)) throw err;
          throw new TaskError(
            `${what}: could not reach the Kubernetes API server at ${this.server}: ${scrub((err as Error).message)}`,
            { cause: err },
          );
        }
        if (res.status >= 200 && res.status < 300) {
          if (res.body.length === 0) return undefined;
          const text = res.body.toString('utf8');
          return (/^\s*[{[]/.test(text) ? JSON.parse(text) : text) as T;
        }
        if (res.status === 404 && opts.notFoundOk) return undefined;
        const status = parseStatus(res.body);
        if (isTransientStatus(res.status)) {
          throw new TransientHttpError(
            res.status,
            `${what} answered HTTP ${res.status}: ${status.message ?? ''}`,
            parseRetryAfter(res.headers['retry-after']),
          );
        }
        throw apiError(res.status, status, what);
      },
      { what, attempts: 5, baseDelayMs: 300, maxDelayMs: 5000 },
    );
  }

  get<T = KubeObject>(path: string, query?: KubeRequest['query']): Promise<T | undefined> {
    return this.request<T>({ method: 'GET', path, query }, { notFoundOk: true });
  }

  async mustGet<T = KubeObject>(path: string, query?: KubeRequest['query']): Promise<T> {
    return (await this.request<T>({ method: 'GET', path, query }))!;
  }

  /** Server-side apply: the server merges `object` as owned by `fieldManager`. */
  async apply<T = KubeObject>(path: string, object: KubeObject, fieldManager: string, force: boolean): Promise<T> {
    return (await this.request<T>({
      method: 'PATCH',
      path,
      query: { fieldManager, force: force ? 'true' : undefined },
      body: object,
      // JSON is YAML; the content type is what makes it an apply.
      contentType: 'application/apply-patch+yaml',
    }))!;
  }

  async patch<T = KubeObject>(
    path: string,
    body: unknown,
    contentType:
      'application/json-patch+json' | 'application/merge-patch+json' | 'application/strategic-merge-patch+json',
    fieldManager?: string,
  ): Promise<T> {
    return (await this.request<T>({ method: 'PATCH', path, body, contentType, query: { fieldManager } }))!;
  }

  /** Deletes; a missing object is not an error. Returns whether there was one. */
  async delete(
    path: string,
    propagationPolicy: 'Background' | 'Foreground' | 'Orphan' = 'Background',
  ): Promise<boolean> {
    const res = await this.request<unknown>(
      { method: 'DELETE', path, body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy } },
      { notFoundOk: true },
    );
    return res !== undefined;
  }

  /** Plain text, e.g. pods/log. */
  async text(path: string, query?: KubeRequest['query']): Promise<string | undefined> {
    const res = await this.request<unknown>({ method: 'GET', path, query }, { notFoundOk: true });
    return res === undefined ? undefined : typeof res === 'string' ? res : JSON.stringify(res);
  }

  /**
   * One watch request: calls `onEvent` for each event until the server closes the stream
   * (its timeoutSeconds), `onEvent` returns true, or `signal` aborts. Resolves with the last
   * resourceVersion seen, so the caller can watch on from there.
   */
  watch<T extends KubeObject>(
    path: string,
    query: { resourceVersion?: string; fieldSelector?: string; labelSelector?: string; timeoutSeconds?: number },
    onEvent: (event: WatchEvent<T>) => boolean | void,
    signal?: AbortSignal,
  ): Promise<{ resourceVersion?: string; stopped: boolean; gone: boolean }> {
    this.requestCount++;
    const url = new URL(
      this.base.pathname.replace(/\/+$/, '') +
        path +
        queryString({ watch: 'true', allowWatchBookmarks: 'true', ...query }),
      this.base,
    );
    const transport = url.protocol === 'http:' ? http : https;
    let resourceVersion = query.resourceVersion;
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (result: { stopped: boolean; gone: boolean } | Error) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        request.destroy();
        if (result instanceof Error) reject(result);
        else resolve({ resourceVersion, ...result });
      };
      const onAbort = () => finish({ stopped: true, gone: false });
      const request = transport.get(
        url,
        {
          agent: this.agent,
          headers: { ...this.access.headers, Accept: 'application/json', 'User-Agent': 'model-delivery-DeployToAKS/1' },
        },
        (res) => {
          if (res.statusCode === 410) return finish({ stopped: false, gone: true });
          if (res.statusCode !== 200) {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const status = parseStatus(Buffer.concat(chunks));
              finish(
                isTransientStatus(res.statusCode ?? 0)
                  ? new TransientHttpError(res.statusCode ?? 0, `watch ${path}: HTTP ${res.statusCode}`)
                  : apiError(res.statusCode ?? 0, status, `watch ${path}`),
              );
            });
            return;
          }
          let pending = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            pending += chunk;
            let nl: number;
            while (!settled && (nl = pending.indexOf('\n')) >= 0) {
              const line = pending.slice(0, nl).trim();
              pending = pending.slice(nl + 1);
              if (!line) continue;
              const event = JSON.parse(line) as WatchEvent<T>;
              if (event.type === 'ERROR') {
                const status = event.object as unknown as StatusBody;
                if (status.code === 410) return finish({ stopped: false, gone: true });
                return finish(apiError(status.code ?? 500, status, `watch ${path}`));
              }
              resourceVersion = event.object?.metadata?.resourceVersion ?? resourceVersion;
              if (event.type === 'BOOKMARK') continue;
              if (onEvent(event) === true) return finish({ stopped: true, gone: false });
            }
          });
          res.on('end', () => finish({ stopped: false, gone: false }));
          res.on('error', (err) => finish(isTransientError(err) ? { stopped: false, gone: false } : err));
        },
      );
      request.on('error', (err) => finish(isTransientError(err) ? { stopped: false, gone: false } : err));
      // A stream gone silent (a dropped connection nobody closed) ends like a server timeout: the caller watches again.
      request.setTimeout(((query.timeoutSeconds ?? 300) + 30) * 1000, () => finish({ stopped: false, gone: false }));
      if (signal) {
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort);
      }
    });
  }
}

function parseStatus(body: Buffer): StatusBody {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as StatusBody;
    return parsed && typeof parsed === 'object' ? parsed : {};
  } catch {
    return { message: body.toString('utf8').slice(0, 500) };
  }
}

function apiError(code: number, status: StatusBody, what: string): KubeApiError {
  let message = status.message ?? 'no message';
  if (code === 401)
    message +=
      ' (the cluster did not accept the credentials: check the service connection, or that the token is for this cluster)';
  if (code === 403) message += ' (the identity lacks the Kubernetes RBAC rights for this; grant them in the namespace)';
  return new KubeApiError(code, status.reason ?? '', scrub(message), what);
}
