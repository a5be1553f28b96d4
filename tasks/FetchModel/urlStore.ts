import * as path from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

import { TaskError } from '../common/errors';
import { isTransientStatus, parseRetryAfter, TransientHttpError, withRetry } from '../common/retry';
import { registerSecret } from '../common/secrets';
import {
  base64ToHex,
  isSha256Hex,
  type ObjectStore,
  sliceStream,
  type StoredObject,
} from '../common/storage/objectStore';

/**
 * One file at an HTTPS URL (a SAS URL, a presigned S3 URL, any web server) as an ObjectStore.
 * Ranged and parallel when the server says `Accept-Ranges: bytes`; otherwise one stream per try.
 */
export class UrlStore implements ObjectStore {
  readonly kind = 'url' as const;
  readonly locationUri: string;
  /** Set by stat: whether ranged requests (and so parallel download and resume) work. */
  supportsRanges = false;
  private readonly name: string;

  constructor(
    private readonly url: string,
    private readonly headers: Record<string, string> = {},
    private readonly fetchImpl: typeof fetch = fetch,
  ) {
    const parsed = new URL(url);
    if (parsed.search) {
      registerSecret(parsed.search.slice(1));
      for (const [, value] of parsed.searchParams) if (value.length >= 16) registerSecret(value);
    }
    this.locationUri = `${parsed.origin}${parsed.pathname}`;
    this.name = decodeURIComponent(path.posix.basename(parsed.pathname)) || 'model';
  }

  async list(): Promise<StoredObject[]> {
    const one = await this.stat();
    return one ? [one] : [];
  }

  async stat(): Promise<StoredObject | undefined> {
    return withRetry(
      async () => {
        let res = await this.fetchImpl(this.url, { method: 'HEAD', headers: this.headers, redirect: 'follow' });
        if (res.status === 405 || res.status === 501) {
          // Some servers refuse HEAD; a one-byte range tells the same things.
          res = await this.fetchImpl(this.url, {
            headers: { ...this.headers, Range: 'bytes=0-0' },
            redirect: 'follow',
          });
          await res.body?.cancel();
        }
        if (res.status === 404) return undefined;
        if (isTransientStatus(res.status))
          throw new TransientHttpError(
            res.status,
            `HEAD ${this.locationUri} answered ${res.status}`,
            parseRetryAfter(res.headers.get('retry-after')),
          );
        if (!res.ok)
          throw new TaskError(
            `${this.locationUri} answered HTTP ${res.status} ${res.statusText}. ${res.status === 403 || res.status === 401 ? "The URL's SAS or signature may have expired or lack read permission." : ''}`.trim(),
          );
        const total = /\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1] ?? res.headers.get('content-length');
        if (total === null || total === undefined)
          throw new TaskError(`${this.locationUri} does not say how large the file is (no Content-Length).`);
        this.supportsRanges = /bytes/i.test(res.headers.get('accept-ranges') ?? '') || res.status === 206;
        const metaSha = res.headers.get('x-ms-meta-sha256') ?? res.headers.get('x-amz-meta-sha256') ?? undefined;
        const metadata: Record<string, string> = {};
        res.headers.forEach((value, key) => {
          const m = /^x-(?:ms|amz)-meta-(.+)$/.exec(key);
          if (m) metadata[m[1].toLowerCase()] = value;
        });
        return {
          name: this.name,
          sizeBytes: Number(total),
          lastModified: new Date(res.headers.get('last-modified') ?? 0),
          etag: (res.headers.get('etag') ?? '').replace(/^(W\/)?"(.*)"$/, '$2'),
          contentMd5: base64ToHex(res.headers.get('content-md5') ?? undefined),
          sha256: isSha256Hex(metaSha) ? metaSha.toLowerCase() : undefined,
          metadata,
          uri: this.locationUri,
        } satisfies StoredObject;
      },
      { what: `HEAD ${this.locationUri}` },
    );
  }

  async details(obj: StoredObject): Promise<StoredObject> {
    return obj;
  }

  async readRange(
    obj: StoredObject,
    offset: number,
    count: number,
    opts: { signal: AbortSignal },
  ): Promise<AsyncIterable<Uint8Array>> {
    const headers: Record<string, string> = { ...this.headers };
    if (this.supportsRanges) headers.Range = `bytes=${offset}-${offset + count - 1}`;
    // A weak ETag cannot pin content; a strong one makes the server refuse a changed file.
    if (obj.etag && this.supportsRanges) headers['If-Match'] = `"${obj.etag}"`;
    const res = await this.fetchImpl(this.url, { headers, signal: opts.signal, redirect: 'follow' });
    if (res.status === 412)
      throw new TaskError(`${this.locationUri} changed while it was being downloaded. Run the task again.`);
    if (isTransientStatus(res.status)) {
      await res.body?.cancel();
      throw new TransientHttpError(
        res.status,
        `GET ${this.locationUri} answered ${res.status}`,
        parseRetryAfter(res.headers.get('retry-after')),
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new TaskError(`${this.locationUri} answered HTTP ${res.status} ${res.statusText} to a download request.`);
    }
    if (this.supportsRanges && res.status !== 206) {
      await res.body?.cancel();
      throw new TaskError(
        `${this.locationUri} ignored the byte range asked for (HTTP ${res.status}); set concurrency to 1 and a blockSize above the file size.`,
      );
    }
    if (!res.body) throw new TaskError(`${this.locationUri} returned no body.`);
    const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
    // Without ranges the whole file comes each time: a resumed request skips what is on disk.
    return this.supportsRanges ? body : sliceStream(body, offset, count);
  }
}
