import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type { LayerCompression } from './mediaTypes';
import { tarStream, type TarEntry, type TarOwnership } from './tar';

/** A layer written to disk, with what the manifest and config say about it. */
export interface BuiltLayer {
  file: string;
  /** sha256 of the bytes as stored and uploaded (compressed when gzip). */
  digest: string;
  size: number;
  /** sha256 of the uncompressed tar: the config's rootfs.diff_ids entry. */
  diffId: string;
  uncompressedSize: number;
  compression: LayerCompression;
  fileCount: number;
}

/** Hashes and counts what passes through, without holding it. */
class HashingCounter extends Transform {
  private readonly hash = crypto.createHash('sha256');
  bytes = 0;
  constructor(private readonly onBytes?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
    done(null, chunk);
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

export interface WriteLayerOptions {
  entries: readonly TarEntry[];
  owner: TarOwnership;
  compression: LayerCompression;
  /** 1 (fast) to 9 (small); gzip only. */
  gzipLevel?: number;
  /** The folder the layer file goes to; the file is named by its digest when done. */
  workDir: string;
  /** Uncompressed bytes as they are read, for progress. */
  onBytes?: (n: number) => void;
}

/**
 * Streams the tar of `entries` to a file, hashing the tar (diffID) and the stored bytes
 * (digest) on the way, in one pass: a multi-GB model is never held in memory.
 */
export async function writeLayer(opts: WriteLayerOptions): Promise<BuiltLayer> {
  fs.mkdirSync(opts.workDir, { recursive: true });
  const temp = path.join(opts.workDir, `layer-${process.pid}-${crypto.randomBytes(6).toString('hex')}.partial`);
  const tarHash = new HashingCounter(opts.onBytes);
  const out = fs.createWriteStream(temp, { highWaterMark: 1 << 20 });
  try {
    let storedHash: HashingCounter | undefined;
    if (opts.compression === 'gzip') {
      storedHash = new HashingCounter();
      // Node's gzip header has mtime 0 and a fixed OS byte, so equal input gives equal bytes.
      const gzip = zlib.createGzip({ level: opts.gzipLevel ?? 6, chunkSize: 1 << 20 });
      await pipeline(Readable.from(tarStream(opts.entries, opts.owner), { objectMode: false, highWaterMark: 4 << 20 }), tarHash, gzip, storedHash, out);
    } else {
      await pipeline(Readable.from(tarStream(opts.entries, opts.owner), { objectMode: false, highWaterMark: 4 << 20 }), tarHash, out);
    }
    const diffId = tarHash.digest();
    const digest = storedHash ? storedHash.digest() : diffId;
    const size = storedHash ? storedHash.bytes : tarHash.bytes;
    const file = path.join(opts.workDir, `${digest.replace(':', '-')}.layer`);
    fs.renameSync(temp, file);
    return {
      file,
      digest,
      size,
      diffId,
      uncompressedSize: tarHash.bytes,
      compression: opts.compression,
      fileCount: opts.entries.filter((e) => e.kind === 'file').length,
    };
  } catch (err) {
    out.destroy();
    fs.rmSync(temp, { force: true });
    throw err;
  }
}
