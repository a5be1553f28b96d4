import type { Readable } from 'node:stream';

import { errorMessage, TaskError } from '../errors';
import { backoffDelay, isTransientError, isTransientStatus, parseRetryAfter, TransientHttpError } from '../retry';
import { scrub } from '../secrets';
import { errorDetail, pushScope } from './auth';
import { discard, readBody, type StreamedResponse } from './http';
import type { RegistryClient } from './registry';

/**
 * Pushing one blob the way crane does: HEAD (skip what the registry has), cross-repository
 * mount (link a base layer from another repository), else POST an upload session and PATCH
 * the bytes in chunks. After a broken chunk the session's status (GET → Range) says where
 * to go on from; a registry that dropped the session gets a fresh one. PUT ?digest= commits.
 */

/** A blob to push: small ones as bytes, layers as a reader of any byte range (so a chunk can be sent again). */
export type BlobSource = { digest: string; size: number } & (
  { open(start: number, end: number): Readable } | { bytes: Buffer }
);

export interface PushBlobOptions {
  /** Repositories on the same registry that hold the blob (the base image's). */
  mountFrom?: readonly string[];
  /** Bytes per PATCH; 0 sends the whole blob in one PATCH. */
  chunkSize?: number;
  onBytes?: (n: number) => void;
  /** Takes back bytes of a chunk that has to be sent again. */
  onRetract?: (n: number) => void;
  /** Failed requests tolerated during one blob's upload. */
  maxFailures?: number;
  sleep?: (ms: number) => Promise<void>;
}

export interface PushBlobResult {
  outcome: 'exists' | 'mounted' | 'uploaded';
  /** Bytes sent, resent ones included. */
  bytesSent: number;
  restarts: number;
  resumes: number;
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function withDigestParam(location: URL, digest: string): URL {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url;
}

/** Distribution's `Range: 0-N` is the last byte held; "0-0" with nothing sent means empty. */
function offsetFromRange(range: string | undefined): number | undefined {
  const m = /^(?:bytes=)?0-(\d+)$/.exec(range?.trim() ?? '');
  if (!m) return undefined;
  const last = Number(m[1]);
  return last === 0 ? 0 : last + 1;
}

export async function pushBlob(
  client: RegistryClient,
  repository: string,
  blob: BlobSource,
  opts: PushBlobOptions = {},
): Promise<PushBlobResult> {
  const scopes = [pushScope(repository)];
  if ((await client.blobSize(repository, blob.digest, scopes)) !== undefined)
    return { outcome: 'exists', bytesSent: 0, restarts: 0, resumes: 0 };
  for (const from of opts.mountFrom ?? []) {
    if (from !== repository && (await client.mountBlob(repository, blob.digest, from)))
      return { outcome: 'mounted', bytesSent: 0, restarts: 0, resumes: 0 };
  }
  return 'bytes' in blob ? uploadMonolithic(client, repository, blob) : uploadChunked(client, repository, blob, opts);
}

async function startUpload(client: RegistryClient, repository: string): Promise<URL> {
  const what = `start blob upload in ${repository}`;
  const res = await client.sendWithRetry({
    method: 'POST',
    path: `/v2/${repository}/blobs/uploads/`,
    scopes: [pushScope(repository)],
    what,
  });
  if (res.status !== 202) return client.unexpected(res, what);
  discard(res);
  const location = res.header('location');
  if (!location)
    throw new TaskError(`Registry ${client.registry} started an upload in ${repository} but gave no Location.`);
  return new URL(location, client.baseUrl);
}

function checkCommitted(client: RegistryClient, res: StreamedResponse, digest: string): void {
  const answered = res.header('docker-content-digest');
  if (answered && answered !== digest)
    throw new TaskError(`Registry ${client.registry} stored a blob as ${answered} where ${digest} was sent.`);
}

/** Small blobs (configs): POST, then one PUT carrying the bytes. */
async function uploadMonolithic(
  client: RegistryClient,
  repository: string,
  blob: { digest: string; size: number; bytes: Buffer },
): Promise<PushBlobResult> {
  const what = `upload blob ${blob.digest} to ${repository}`;
  let bytesSent = 0;
  for (let attempt = 1; ; attempt++) {
    try {
      const location = await startUpload(client, repository);
      bytesSent += blob.bytes.length;
      const put = await client.send({
        method: 'PUT',
        path: withDigestParam(location, blob.digest),
        scopes: [pushScope(repository)],
        headers: { 'content-type': 'application/octet-stream' },
        body: blob.bytes,
        what,
      });
      if (put.status === 201 || put.status === 204) {
        checkCommitted(client, put, blob.digest);
        discard(put);
        return { outcome: 'uploaded', bytesSent, restarts: attempt - 1, resumes: 0 };
      }
      if (isTransientStatus(put.status)) {
        discard(put);
        throw new TransientHttpError(
          put.status,
          `${what} answered HTTP ${put.status}`,
          parseRetryAfter(put.header('retry-after')),
        );
      }
      return await client.unexpected(put, what);
    } catch (err) {
      if (attempt >= 6 || !isTransientError(err)) throw err;
      await (client.retry.sleep ?? realSleep)(backoffDelay(attempt, client.retry));
    }
  }
}

/**
 * Large blobs (layers) from a file: PATCH chunk by chunk. Every failure costs one of
 * `maxFailures`; the session's Range says how much the registry kept, so only the rest is sent.
 */
async function uploadChunked(
  client: RegistryClient,
  repository: string,
  blob: { digest: string; size: number; open(start: number, end: number): Readable },
  opts: PushBlobOptions,
): Promise<PushBlobResult> {
  const scopes = [pushScope(repository)];
  const what = `upload blob ${blob.digest} to ${repository}`;
  const chunkSize = opts.chunkSize && opts.chunkSize > 0 ? opts.chunkSize : blob.size;
  const maxFailures = opts.maxFailures ?? 8;
  const sleep = opts.sleep ?? client.retry.sleep ?? realSleep;
  let failures = 0;
  let restarts = 0;
  let resumes = 0;
  let bytesSent = 0;
  let location = await startUpload(client, repository);
  let offset = 0;

  const fail = async (err: unknown): Promise<void> => {
    failures++;
    if (!isTransientError(err) || failures >= maxFailures) throw err;
    const delay = backoffDelay(
      failures,
      client.retry,
      err instanceof TransientHttpError ? err.retryAfterMs : undefined,
    );
    console.log(
      `${what} failed at byte ${offset} (failure ${failures}/${maxFailures}): ${scrub(errorMessage(err))}; retrying in ${Math.round(delay)} ms`,
    );
    await sleep(delay);
  };

  /** Where the session stands after a failure; a new session when the registry dropped it. */
  const recover = async (): Promise<void> => {
    try {
      const status = await client.send({ method: 'GET', path: location, scopes, what: `status of ${what}` });
      discard(status);
      const held = status.status === 204 || status.status === 202 ? offsetFromRange(status.header('range')) : undefined;
      if (held !== undefined && held <= blob.size) {
        const newLocation = status.header('location');
        if (newLocation) location = new URL(newLocation, client.baseUrl);
        if (held !== offset) opts.onRetract?.(Math.max(0, offset - held));
        offset = held;
        resumes++;
        console.log(`${what}: resuming at byte ${offset} of ${blob.size}`);
        return;
      }
    } catch (err) {
      if (!isTransientError(err)) throw err;
    }
    opts.onRetract?.(offset);
    offset = 0;
    restarts++;
    console.log(`${what}: the registry dropped the upload session; starting it again`);
    location = await startUpload(client, repository);
  };

  // Send what the registry lacks, then commit; a commit that finds the session gone starts over.
  for (;;) {
    while (offset < blob.size) {
      const start = offset;
      const end = Math.min(blob.size, start + chunkSize);
      let sentInChunk = 0;
      try {
        const res = await client.send({
          method: 'PATCH',
          path: location,
          scopes,
          headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${end - 1}` },
          body: () => blob.open(start, end),
          bodyLength: end - start,
          onBodyBytes: (n) => {
            sentInChunk += n;
            bytesSent += n;
            opts.onBytes?.(n);
          },
          what,
          timeoutMs: 300_000,
        });
        if (res.status === 202 || res.status === 204) {
          discard(res);
          const next = res.header('location');
          if (next) location = new URL(next, client.baseUrl);
          offset = end;
          continue;
        }
        const body = await readBody(res).catch(() => Buffer.alloc(0));
        if (isTransientStatus(res.status))
          throw new TransientHttpError(
            res.status,
            `PATCH answered HTTP ${res.status}${errorDetail({ body })}`,
            parseRetryAfter(res.header('retry-after')),
          );
        if (res.status === 404 || res.status === 416 || res.status === 400)
          throw new TransientHttpError(res.status, `PATCH answered HTTP ${res.status}${errorDetail({ body })}`);
        throw new TaskError(
          `Registry ${client.registry}: ${what} failed with HTTP ${res.status}${errorDetail({ body })}.`,
        );
      } catch (err) {
        opts.onRetract?.(sentInChunk);
        await fail(err);
        await recover();
      }
    }

    try {
      const res = await client.send({
        method: 'PUT',
        path: withDigestParam(location, blob.digest),
        scopes,
        what: `commit ${what}`,
      });
      if (res.status === 201 || res.status === 204) {
        checkCommitted(client, res, blob.digest);
        discard(res);
        return { outcome: 'uploaded', bytesSent, restarts, resumes };
      }
      const body = await readBody(res).catch(() => Buffer.alloc(0));
      if (res.status === 400 && /DIGEST_INVALID|digest did not match/i.test(body.toString())) {
        throw new TaskError(
          `Registry ${client.registry} says the bytes of ${blob.digest} it received do not match their digest; the layer file may have changed on disk.`,
        );
      }
      if (isTransientStatus(res.status) || res.status === 404)
        throw new TransientHttpError(
          res.status,
          `PUT answered HTTP ${res.status}${errorDetail({ body })}`,
          parseRetryAfter(res.header('retry-after')),
        );
      throw new TaskError(
        `Registry ${client.registry}: commit of ${what} failed with HTTP ${res.status}${errorDetail({ body })}.`,
      );
    } catch (err) {
      await fail(err);
      // A PUT that failed on the way back may still have committed the blob.
      if ((await client.blobSize(repository, blob.digest, scopes)) !== undefined)
        return { outcome: 'uploaded', bytesSent, restarts, resumes };
      await recover();
    }
  }
}
