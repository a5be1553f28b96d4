import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';

import type { LayerCompression } from './mediaTypes';
import { TarArchive, type TarEntry, type TarOwnership } from './tar';

/** A layer written to disk, with what the manifest and config say about it. */
export interface BuiltLayer {
  /** The compressed layer on disk; absent for an uncompressed layer, which is read from its sources. */
  file?: string;
  /** Bytes [start, end) of the layer as stored, for upload (and resumed upload) or an OCI layout. */
  open(start: number, end: number): Readable;
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
  /** Each source file's bytes as they are read, so a caller can hash the files in the same pass. */
  onFileBytes?: (file: string, chunk: Buffer) => void;
}

export function fileRange(file: string): (start: number, end: number) => Readable {
  return (start, end) => fs.createReadStream(file, { start, end: end - 1, highWaterMark: 1 << 20 });
}

/**
 * Builds a layer, hashing the tar (diffID) and the stored bytes (digest) in one pass: a multi-GB
 * model is never held in memory. A gzip layer is streamed to a temp file; an uncompressed one is
 * only hashed, and read again from the source files when it is uploaded, so it costs no disk.
 */
export async function writeLayer(opts: WriteLayerOptions): Promise<BuiltLayer> {
  const archive = new TarArchive(opts.entries, opts.owner);
  const fileCount = opts.entries.filter((e) => e.kind === 'file').length;
  const tarHash = new HashingCounter(opts.onBytes);
  if (opts.compression === 'none') {
    await pipeline(
      Readable.from(archive.read(0, archive.size, 1 << 20, opts.onFileBytes), { objectMode: false }),
      tarHash,
      new Writable({ write: (_chunk, _enc, done) => done() }),
    );
    const digest = tarHash.digest();
    return {
      open: (start, end) => Readable.from(archive.read(start, end), { objectMode: false }),
      digest,
      size: archive.size,
      diffId: digest,
      uncompressedSize: archive.size,
      compression: 'none',
      fileCount,
    };
  }
  fs.mkdirSync(opts.workDir, { recursive: true });
  const temp = path.join(opts.workDir, `layer-${process.pid}-${crypto.randomBytes(6).toString('hex')}.partial`);
  const out = fs.createWriteStream(temp, { highWaterMark: 1 << 20 });
  try {
    const storedHash = new HashingCounter();
    // Node's gzip header has mtime 0 and a fixed OS byte, so equal input gives equal bytes.
    const gzip = zlib.createGzip({ level: opts.gzipLevel ?? 6, chunkSize: 1 << 20 });
    await pipeline(
      Readable.from(archive.read(0, archive.size, 1 << 20, opts.onFileBytes), { objectMode: false }),
      tarHash,
      gzip,
      storedHash,
      out,
    );
    const digest = storedHash.digest();
    const file = path.join(opts.workDir, `${digest.replace(':', '-')}.layer`);
    fs.renameSync(temp, file);
    return {
      file,
      open: fileRange(file),
      digest,
      size: storedHash.bytes,
      diffId: tarHash.digest(),
      uncompressedSize: tarHash.bytes,
      compression: 'gzip',
      fileCount,
    };
  } catch (err) {
    out.destroy();
    fs.rmSync(temp, { force: true });
    throw err;
  }
}
