import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

import * as tl from 'azure-pipelines-task-lib/task';

import { errorMessage } from '../errors';
import type { ByteProgress } from '../progress';
import { backoffDelay, isTransientError, retryAfterOf, TransientHttpError } from '../retry';
import { scrub } from '../secrets';
import type { Limiter, ObjectStore, StoredObject } from './objectStore';

/**
 * Parallel ranged download of one object into a preallocated file: each range is written at its
 * offset, retried on transient faults and resumed from the last byte written. SHA-256 (and MD5
 * when asked) is computed in order by a follower that hashes each range as soon as every range
 * before it is on disk, reading it back from the page cache, so memory stays bounded by
 * concurrency × write batch, never by the object's size.
 */

export interface RangedDownloadOptions {
  blockSize: number;
  /** Shared by all files of a model, so a folder of small files and one large file both use it fully. */
  limiter: Limiter;
  progress?: ByteProgress;
  /** Also compute MD5 (only when Content-MD5 is the one checksum the store gives). */
  md5?: boolean;
  /** Consecutive failures of one range with no byte gained before giving up. */
  attempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A range that receives nothing for this long is aborted and resumed. */
  stallTimeoutMs?: number;
  signal?: AbortSignal;
  sleep?: (ms: number) => Promise<void>;
}

export interface DownloadedFile {
  sha256: string;
  md5?: string;
  sizeBytes: number;
  /** Bytes received over the network, retries included (a resumed range does not re-fetch). */
  bytesTransferred: number;
  /** Ranges that had to be resumed after a transient fault. */
  retries: number;
}

/** Coalesce network chunks into writes of this size: fewer syscalls, bounded memory. */
const WRITE_BATCH = 1 << 20;
const HASH_READ = 1 << 20;

class StallError extends Error {
  constructor(ms: number) {
    super(`no data received for ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function downloadObjectToFile(
  store: ObjectStore,
  obj: StoredObject,
  file: string,
  opts: RangedDownloadOptions,
): Promise<DownloadedFile> {
  const size = obj.sizeBytes;
  const blockSize = Math.max(1, opts.blockSize);
  const rangeCount = Math.max(1, Math.ceil(size / blockSize));
  const attempts = opts.attempts ?? 8;
  const stallMs = opts.stallTimeoutMs ?? 60_000;
  const sleep = opts.sleep ?? realSleep;
  const sha256 = crypto.createHash('sha256');
  const md5 = opts.md5 ? crypto.createHash('md5') : undefined;
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });

  // w+: the hash follower reads back what the ranges wrote.
  const handle = await fs.promises.open(file, 'w+');
  let bytesTransferred = 0;
  let retries = 0;
  try {
    if (size > 0) await handle.truncate(size);

    const finished = new Uint8Array(rangeCount);
    let hashedRanges = 0;
    let hashChain: Promise<void> = Promise.resolve();
    const hashBuffer = Buffer.allocUnsafe(Math.min(HASH_READ, Math.max(1, size)));
    const hashReady = async () => {
      while (hashedRanges < rangeCount && finished[hashedRanges]) {
        const start = hashedRanges * blockSize;
        const end = Math.min(size, start + blockSize);
        for (let pos = start; pos < end;) {
          const { bytesRead } = await handle.read(hashBuffer, 0, Math.min(hashBuffer.length, end - pos), pos);
          if (bytesRead === 0) throw new Error(`read back 0 bytes at ${pos} of ${file}`);
          const view = hashBuffer.subarray(0, bytesRead);
          sha256.update(view);
          md5?.update(view);
          pos += bytesRead;
        }
        hashedRanges++;
      }
    };

    /** One range, resumed after transient faults; gives up after `attempts` failures in a row with no byte gained. */
    const fetchRange = async (index: number) => {
      const offset = index * blockSize;
      const count = Math.min(blockSize, size - offset);
      const state = { written: 0 };
      let failures = 0;
      for (;;) {
        const before = state.written;
        try {
          await readRangeOnce(offset, count, state);
          return;
        } catch (err) {
          if (abort.signal.aborted || !isTransientError(err)) throw err;
          if (state.written > before) failures = 0;
          failures++;
          retries++;
          if (failures >= attempts) throw err;
          const delay = backoffDelay(
            failures,
            { baseDelayMs: opts.baseDelayMs ?? 250, maxDelayMs: opts.maxDelayMs ?? 30_000 },
            retryAfterOf(err),
          );
          console.log(
            `${obj.name}: bytes ${offset + state.written}-${offset + count - 1} interrupted (${scrub(errorMessage(err))}); resuming in ${Math.round(delay)} ms (attempt ${failures + 1} of ${attempts})`,
          );
          await sleep(delay);
        }
      }
    };

    /** One request for the rest of a range; `state.written` always says how much of it is on disk. */
    const readRangeOnce = async (offset: number, count: number, state: { written: number }): Promise<void> => {
      const attemptAbort = new AbortController();
      const onAbort = () => attemptAbort.abort(abort.signal.reason);
      abort.signal.addEventListener('abort', onAbort, { once: true });
      let stallTimer: NodeJS.Timeout | undefined;
      const armStallTimer = () => {
        clearTimeout(stallTimer);
        stallTimer = setTimeout(() => attemptAbort.abort(new StallError(stallMs)), stallMs);
      };
      let batch: Buffer[] = [];
      let batchBytes = 0;
      const flush = async () => {
        if (batchBytes === 0) return;
        const buffers = batch;
        const bytes = batchBytes;
        batch = [];
        batchBytes = 0;
        await handle.writev(buffers, offset + state.written);
        state.written += bytes;
      };
      try {
        armStallTimer();
        const body = await store.readRange(obj, offset + state.written, count - state.written, {
          signal: attemptAbort.signal,
        });
        for await (const chunk of body) {
          armStallTimer();
          const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
          if (state.written + batchBytes + buf.length > count)
            throw new Error(`${obj.name}: the server sent more than the ${count} bytes asked for at offset ${offset}`);
          batch.push(buf);
          batchBytes += buf.length;
          bytesTransferred += buf.length;
          opts.progress?.add(buf.length);
          if (batchBytes >= WRITE_BATCH) await flush();
        }
        await flush();
        if (state.written < count)
          throw new TransientHttpError(0, `connection closed after ${state.written} of ${count} bytes`);
      } catch (err) {
        // What arrived before the fault is good: put it on disk so the retry resumes after it.
        await flush().catch(() => undefined);
        if (attemptAbort.signal.reason instanceof StallError && !abort.signal.aborted) throw attemptAbort.signal.reason;
        throw err;
      } finally {
        clearTimeout(stallTimer);
        abort.signal.removeEventListener('abort', onAbort);
      }
    };

    let nextRange = 0;
    const worker = async () => {
      while (nextRange < rangeCount && !abort.signal.aborted) {
        const index = nextRange++;
        await opts.limiter.run(() => fetchRange(index));
        finished[index] = 1;
        hashChain = hashChain.then(hashReady);
        // Observed at the end; until then a failure here must not count as unhandled.
        hashChain.catch(() => undefined);
      }
    };
    const workers = Array.from({ length: Math.min(rangeCount, opts.limiter.limit) }, () =>
      worker().catch((err) => {
        abort.abort(err);
        throw err;
      }),
    );
    const settled = await Promise.allSettled(workers);
    // Let the follower finish (or fail) before the handle closes under it.
    await hashChain.catch(() => undefined);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    // The first failure aborted the rest; report it, not the aborts it caused.
    if (failed) throw abort.signal.reason ?? failed.reason;
    if (size === 0) finished[0] = 1;
    hashChain = hashChain.then(hashReady);
    await hashChain;
    if (hashedRanges !== rangeCount)
      throw new Error(`internal: hashed ${hashedRanges} of ${rangeCount} ranges of ${obj.name}`);
    tl.debug(`${obj.name}: ${size} bytes in ${rangeCount} ranges, ${retries} resumed`);
    return { sha256: sha256.digest('hex'), md5: md5?.digest('hex'), sizeBytes: size, bytesTransferred, retries };
  } finally {
    opts.signal?.removeEventListener('abort', onOuterAbort);
    await handle.close();
  }
}
