import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

import { TaskError } from '../errors';
import { isTransientStatus, parseRetryAfter, type RetryOptions, TransientHttpError, withRetry } from '../retry';
import {
  describeCredential,
  errorDetail,
  pullScope,
  pushScope,
  RegistryAuth,
  RegistryAuthError,
  type RegistryCredential,
} from './auth';
import { discard, type HttpRequest, readBody, sendRequest, type StreamedResponse } from './http';
import { sha256Digest } from './image';
import { MANIFEST_ACCEPT } from './mediaTypes';
import { apiHostOf } from './reference';

/**
 * One registry's v2 API, call by call: each method is one endpoint (HEAD a blob, mount it,
 * GET/PUT a manifest), with auth and retries of transient faults around it. Uploads, which
 * resume rather than restart, live in blobUpload.ts.
 */

export interface RegistryClientOptions {
  credential: RegistryCredential;
  /** Plain http; only for loopback registries and connections that say http://. */
  insecure?: boolean;
  retry?: RetryOptions;
}

export interface RegistryCall {
  method: string;
  /** A path under the registry (`/v2/...`) or an absolute URL (upload locations). */
  path: string | URL;
  scopes: readonly string[];
  headers?: Record<string, string>;
  body?: HttpRequest['body'];
  bodyLength?: number;
  onBodyBytes?: (n: number) => void;
  /** Said in errors: "HEAD blob sha256:… in app/scoring". */
  what: string;
  timeoutMs?: number;
}

export interface FetchedManifest {
  mediaType: string;
  bytes: Buffer;
  digest: string;
}

export function isLoopbackHost(host: string): boolean {
  return /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(host);
}

export class RegistryClient {
  readonly auth: RegistryAuth;
  readonly baseUrl: URL;

  constructor(
    /** Host (and port) as written in references. */
    readonly registry: string,
    readonly options: RegistryClientOptions,
  ) {
    const scheme = options.insecure || isLoopbackHost(registry) ? 'http' : 'https';
    this.baseUrl = new URL(`${scheme}://${apiHostOf(registry)}`);
    this.auth = new RegistryAuth(registry, this.baseUrl, options.credential);
  }

  get retry(): RetryOptions {
    return this.options.retry ?? {};
  }

  /**
   * One call with auth: a 401 first re-reads the challenge and retries once with a fresh token;
   * a second 401 (or a 403) is the credentials' fault and says whose.
   */
  async send(call: RegistryCall): Promise<StreamedResponse> {
    const url = typeof call.path === 'string' ? new URL(call.path, this.baseUrl) : call.path;
    for (let attempt = 1; ; attempt++) {
      const authorization = await this.auth.authorization(call.scopes);
      const res = await sendRequest({
        method: call.method,
        url,
        headers: { ...(call.headers ?? {}), ...(authorization ? { authorization } : {}) },
        body: call.body,
        bodyLength: call.bodyLength,
        onBodyBytes: call.onBodyBytes,
        timeoutMs: call.timeoutMs,
      });
      if (res.status === 401 && attempt === 1 && this.auth.invalidate(res, call.scopes)) {
        discard(res);
        continue;
      }
      if (res.status === 401 || (res.status === 403 && this.options.credential.kind !== 'anonymous')) {
        const body = await readBody(res).catch(() => Buffer.alloc(0));
        throw new RegistryAuthError(
          res.status === 401
            ? `Registry ${this.registry} refused ${describeCredential(this.options.credential)} for ${call.what} (HTTP 401${errorDetail({ body })}). Check the user name and password (or token) in the service connection.`
            : `Registry ${this.registry} denied ${call.what} to ${describeCredential(this.options.credential)} (HTTP 403${errorDetail({ body })}). Give the identity pull and push rights on the repository.`,
          res.status,
        );
      }
      return res;
    }
  }

  /** send() with transient faults (5xx, 429, resets, timeouts) retried; for calls whose body can be sent again. */
  async sendWithRetry(call: RegistryCall): Promise<StreamedResponse> {
    return withRetry(
      async () => {
        const res = await this.send(call);
        if (isTransientStatus(res.status)) {
          const body = await readBody(res).catch(() => Buffer.alloc(0));
          throw new TransientHttpError(
            res.status,
            `${call.what} answered HTTP ${res.status}${errorDetail({ body })}`,
            parseRetryAfter(res.header('retry-after')),
          );
        }
        return res;
      },
      { what: call.what, ...this.retry },
    );
  }

  async unexpected(res: StreamedResponse, what: string): Promise<never> {
    const body = await readBody(res).catch(() => Buffer.alloc(0));
    throw new TaskError(`Registry ${this.registry}: ${what} failed with HTTP ${res.status}${errorDetail({ body })}.`);
  }

  /** The blob's size when the repository has it, else undefined. */
  async blobSize(repository: string, digest: string, scopes = [pullScope(repository)]): Promise<number | undefined> {
    const what = `HEAD blob ${digest} in ${repository}`;
    const res = await this.sendWithRetry({ method: 'HEAD', path: `/v2/${repository}/blobs/${digest}`, scopes, what });
    discard(res);
    if (res.status === 200) return Number(res.header('content-length') ?? -1);
    if (res.status === 404) return undefined;
    return this.unexpected(res, what);
  }

  /** Cross-repository mount: true when the registry linked the blob without an upload. */
  async mountBlob(repository: string, digest: string, fromRepository: string): Promise<boolean> {
    const what = `mount blob ${digest} from ${fromRepository} into ${repository}`;
    const path = `/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(fromRepository)}`;
    const res = await this.sendWithRetry({
      method: 'POST',
      path,
      scopes: [pushScope(repository), pullScope(fromRepository)],
      what,
    });
    discard(res);
    if (res.status === 201) return true;
    if (res.status === 202) {
      // The registry started an upload instead; drop it, the caller uploads in its own session.
      const location = res.header('location');
      if (location) {
        const cancel = await this.send({
          method: 'DELETE',
          path: new URL(location, this.baseUrl),
          scopes: [pushScope(repository)],
          what: 'cancel upload',
        }).catch(() => undefined);
        if (cancel) discard(cancel);
      }
      return false;
    }
    if (res.status === 404 || res.status === 403 || res.status === 405) return false;
    return this.unexpected(res, what);
  }

  async getManifest(
    repository: string,
    reference: string,
    scopes = [pullScope(repository)],
  ): Promise<FetchedManifest | undefined> {
    const what = `GET manifest ${repository}:${reference}`;
    const res = await this.sendWithRetry({
      method: 'GET',
      path: `/v2/${repository}/manifests/${reference}`,
      scopes,
      headers: { accept: MANIFEST_ACCEPT },
      what,
    });
    if (res.status === 404) {
      discard(res);
      return undefined;
    }
    if (res.status !== 200) return this.unexpected(res, what);
    const bytes = await readBody(res);
    const digest = sha256Digest(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new TaskError(
        `Registry ${this.registry} returned a manifest for ${repository}@${reference} whose digest is ${digest}. The registry or something in between changed it.`,
      );
    }
    let mediaType = (res.header('content-type') ?? '').split(';')[0].trim();
    try {
      const parsed = JSON.parse(bytes.toString('utf8')) as {
        mediaType?: string;
        manifests?: unknown;
        layers?: unknown;
      };
      if (parsed.mediaType) mediaType = parsed.mediaType;
    } catch {
      throw new TaskError(
        `Registry ${this.registry} returned a manifest for ${repository}:${reference} that is not JSON.`,
      );
    }
    return { mediaType, bytes, digest };
  }

  async putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    const what = `PUT manifest ${repository}:${reference}`;
    const res = await this.sendWithRetry({
      method: 'PUT',
      path: `/v2/${repository}/manifests/${reference}`,
      scopes: [pushScope(repository)],
      headers: { 'content-type': mediaType },
      body: bytes,
      what,
    });
    if (res.status !== 201 && res.status !== 200) return this.unexpected(res, what);
    discard(res);
    const digest = sha256Digest(bytes);
    const answered = res.header('docker-content-digest');
    if (answered && answered !== digest)
      throw new TaskError(
        `Registry ${this.registry} stored manifest ${repository}:${reference} as ${answered}, but its bytes hash to ${digest}.`,
      );
    return digest;
  }

  /** A small blob (an image config) in memory, checked against its digest. */
  async getBlobBytes(repository: string, digest: string, limit = 32 << 20): Promise<Buffer> {
    const what = `GET blob ${digest} from ${repository}`;
    return withRetry(
      async () => {
        const res = await this.getBlobResponse(repository, digest, what);
        const bytes = await readBody(res, limit);
        if (sha256Digest(bytes) !== digest)
          throw new TaskError(`Blob ${digest} from ${this.registry}/${repository} does not match its digest.`);
        return bytes;
      },
      { what, ...this.retry },
    );
  }

  /** Downloads a blob to a file, resuming with Range after a broken connection, and verifies its digest. */
  async downloadBlob(repository: string, digest: string, file: string, onBytes?: (n: number) => void): Promise<number> {
    const what = `GET blob ${digest} from ${repository}`;
    fs.rmSync(file, { force: true });
    return withRetry(
      async () => {
        const have = fs.existsSync(file) ? fs.statSync(file).size : 0;
        const res = await this.getBlobResponse(repository, digest, what, have);
        const resumed = res.status === 206;
        const out = fs.createWriteStream(file, { flags: resumed ? 'a' : 'w' });
        try {
          for await (const chunk of res.stream) {
            if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
            onBytes?.((chunk as Buffer).length);
          }
        } finally {
          await new Promise<void>((resolve) => out.end(() => resolve()));
        }
        const hash = crypto.createHash('sha256');
        for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
        if (`sha256:${hash.digest('hex')}` !== digest) {
          fs.rmSync(file, { force: true });
          throw new TransientHttpError(
            502,
            `blob ${digest} from ${this.registry}/${repository} did not match its digest; downloading again`,
          );
        }
        return fs.statSync(file).size;
      },
      { what, ...this.retry },
    );
  }

  /** GET a blob, following the registry's redirect to blob storage without our Authorization header. */
  private async getBlobResponse(repository: string, digest: string, what: string, from = 0): Promise<StreamedResponse> {
    const headers: Record<string, string> = from > 0 ? { range: `bytes=${from}-` } : {};
    let res = await this.send({
      method: 'GET',
      path: `/v2/${repository}/blobs/${digest}`,
      scopes: [pullScope(repository)],
      headers,
      what,
    });
    for (let hops = 0; res.status >= 300 && res.status < 400 && res.header('location') && hops < 5; hops++) {
      discard(res);
      res = await sendRequest({ method: 'GET', url: new URL(res.header('location')!, res.url), headers });
    }
    if (isTransientStatus(res.status)) {
      discard(res);
      throw new TransientHttpError(
        res.status,
        `${what} answered HTTP ${res.status}`,
        parseRetryAfter(res.header('retry-after')),
      );
    }
    if (res.status === 404) {
      discard(res);
      throw new TaskError(
        `Registry ${this.registry} has no blob ${digest} in ${repository}, though a manifest lists it.`,
      );
    }
    if (res.status !== 200 && res.status !== 206) return this.unexpected(res, what);
    return res;
  }
}
