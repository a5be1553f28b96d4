import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { TaskError } from '../errors';
import type { Descriptor, ImageIndex } from './image';
import type { ImageSource, SourceManifest } from './imageSource';
import { MediaType } from './mediaTypes';
import { isValidDigest } from './reference';

/**
 * An OCI image layout folder (oci-layout, index.json, blobs/<alg>/<hex>) as a base image source,
 * as skopeo's `oci:` transport reads it: images are index.json entries, named by their
 * `org.opencontainers.image.ref.name`. Every blob is checked against its digest as it is read,
 * and a blob (or a symlink) that leads outside the folder is refused.
 */

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

/** The layout is missing, is not a layout, lacks the image asked for, or is damaged: the user fixes the folder or the reference. */
export class LayoutSourceError extends TaskError {
  constructor(message: string) {
    super(message);
    this.name = 'LayoutSourceError';
  }
}

const MANIFEST_LIMIT = 4 << 20;

function refNameOf(d: Descriptor): string | undefined {
  return d.annotations?.[REF_NAME_ANNOTATION];
}

/** An index or image manifest's media type when the JSON leaves it out (OCI allows that). */
function mediaTypeOf(bytes: Buffer, fallback: string | undefined, what: string): string {
  let parsed: { mediaType?: string; manifests?: unknown; config?: unknown };
  try {
    parsed = JSON.parse(bytes.toString('utf8')) as typeof parsed;
  } catch {
    throw new LayoutSourceError(`${what} is not JSON.`);
  }
  if (parsed.mediaType) return parsed.mediaType;
  if (fallback) return fallback;
  if (Array.isArray(parsed.manifests)) return MediaType.ociIndex;
  return MediaType.ociManifest;
}

export class LayoutImageSource implements ImageSource {
  private constructor(
    /** Absolute folder. */
    readonly dir: string,
    private readonly realDir: string,
    private readonly indexBytes: Buffer,
    readonly index: ImageIndex,
  ) {}

  /** Opens the folder, checking it is an OCI image layout (oci-layout and index.json). */
  static open(dir: string): LayoutImageSource {
    if (!fs.existsSync(dir))
      throw new LayoutSourceError(
        `the OCI layout folder ${dir} does not exist. Write oci:<folder>[:<ref-name>] with a folder on the agent, e.g. one written by skopeo copy … oci:<folder>:<tag>.`,
      );
    if (!fs.statSync(dir).isDirectory())
      throw new LayoutSourceError(
        `${dir} is not a folder; an OCI image layout is a folder with oci-layout, index.json and blobs/.`,
      );
    const layoutFile = path.join(dir, 'oci-layout');
    const indexFile = path.join(dir, 'index.json');
    const missing = [layoutFile, indexFile].filter((f) => !fs.existsSync(f)).map((f) => path.basename(f));
    if (missing.length)
      throw new LayoutSourceError(
        `${dir} is not an OCI image layout: it has no ${missing.join(' and no ')}. Give the folder skopeo or BakeModelImage's outputLayout wrote.`,
      );
    let version: unknown;
    try {
      version = (JSON.parse(fs.readFileSync(layoutFile, 'utf8')) as { imageLayoutVersion?: unknown })
        .imageLayoutVersion;
    } catch {
      throw new LayoutSourceError(`${dir} is not an OCI image layout: its oci-layout file is not JSON.`);
    }
    if (typeof version !== 'string' || !/^1\./.test(version))
      throw new LayoutSourceError(
        `${dir} has imageLayoutVersion ${JSON.stringify(version)}; only 1.x layouts are read.`,
      );
    const indexBytes = fs.readFileSync(indexFile);
    let index: ImageIndex;
    try {
      index = JSON.parse(indexBytes.toString('utf8')) as ImageIndex;
    } catch {
      throw new LayoutSourceError(`${dir} is not a valid OCI image layout: its index.json is not JSON.`);
    }
    if (!Array.isArray(index.manifests))
      throw new LayoutSourceError(`${dir} is not a valid OCI image layout: its index.json has no manifests list.`);
    return new LayoutImageSource(dir, fs.realpathSync(dir), indexBytes, index);
  }

  /** The ref names the layout has, for messages. */
  refNames(): string[] {
    return [...new Set(this.index.manifests.map(refNameOf).filter((r): r is string => !!r))];
  }

  private blobPath(digest: string): string {
    if (!isValidDigest(digest))
      throw new LayoutSourceError(`OCI layout ${this.dir} names a blob '${digest}', which is not a digest.`);
    const [algorithm, hex] = digest.split(':');
    const file = path.join(this.dir, 'blobs', algorithm, hex);
    if (!fs.existsSync(file))
      throw new LayoutSourceError(
        `OCI layout ${this.dir} has no blob ${digest}, though the image lists it. The layout is incomplete: copy the image into it again.`,
      );
    const real = fs.realpathSync(file);
    if (!real.startsWith(this.realDir + path.sep))
      throw new LayoutSourceError(
        `OCI layout ${this.dir}: blob ${digest} leads outside the folder (to ${real}); refused.`,
      );
    return real;
  }

  private readBlob(digest: string, limit: number): Buffer {
    const file = this.blobPath(digest);
    const size = fs.statSync(file).size;
    if (size > limit)
      throw new LayoutSourceError(
        `OCI layout ${this.dir}: blob ${digest} has ${size} bytes, more than a manifest or config may (${limit}).`,
      );
    const bytes = fs.readFileSync(file);
    const actual = `${digest.split(':')[0]}:${crypto.createHash(digest.split(':')[0]).update(bytes).digest('hex')}`;
    if (actual !== digest) throw this.mismatch(digest, actual);
    return bytes;
  }

  private mismatch(digest: string, actual: string): LayoutSourceError {
    return new LayoutSourceError(
      `OCI layout ${this.dir} is damaged: blob ${digest} does not match its digest (its bytes hash to ${actual}). Copy the image into the layout again.`,
    );
  }

  private manifestFrom(entry: Descriptor): SourceManifest {
    const bytes = this.readBlob(entry.digest, MANIFEST_LIMIT);
    return {
      bytes,
      digest: entry.digest,
      mediaType: mediaTypeOf(bytes, entry.mediaType, `Manifest ${entry.digest} in OCI layout ${this.dir}`),
      refName: refNameOf(entry),
    };
  }

  /** Several index.json entries for one name, each with a platform (as some tools write a multi-platform image): an index of them. */
  private indexOf(entries: Descriptor[], refName?: string): SourceManifest {
    const bytes =
      entries.length === this.index.manifests.length
        ? this.indexBytes
        : Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: entries }));
    return {
      bytes,
      digest: `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`,
      mediaType: MediaType.ociIndex,
      refName,
    };
  }

  private pick(entries: Descriptor[], refName?: string): SourceManifest | undefined {
    if (entries.length === 0) return undefined;
    if (entries.length === 1) return this.manifestFrom(entries[0]);
    if (entries.every((e) => e.platform)) return this.indexOf(entries, refName);
    const digests = new Set(entries.map((e) => e.digest));
    if (digests.size === 1) return this.manifestFrom(entries[0]);
    // Several images and no name asked for: describeMissing lists the names to pick from.
    if (refName === undefined) return undefined;
    throw new LayoutSourceError(
      `OCI layout ${this.dir} holds ${digests.size} different images named '${refName}': ${[...digests].join(', ')}. Pick one with oci:<folder>@<digest>.`,
    );
  }

  async getManifest(reference: string | undefined): Promise<SourceManifest | undefined> {
    const entries = this.index.manifests;
    if (reference === undefined) {
      // skopeo takes the only image; with several, the one named latest (as a registry's default tag).
      const latest = entries.filter((e) => refNameOf(e) === 'latest');
      return latest.length ? this.pick(latest, 'latest') : this.pick(entries);
    }
    if (isValidDigest(reference)) {
      const listed = entries.find((e) => e.digest === reference);
      if (listed) return this.manifestFrom(listed);
      const [algorithm, hex] = reference.split(':');
      if (!fs.existsSync(path.join(this.dir, 'blobs', algorithm, hex))) return undefined;
      return this.manifestFrom({ mediaType: '', digest: reference, size: 0 });
    }
    return this.pick(
      entries.filter((e) => refNameOf(e) === reference),
      reference,
    );
  }

  async describeMissing(reference: string | undefined): Promise<string> {
    const names = this.refNames();
    const has = `it has ${names.length ? `ref names ${names.map((n) => `'${n}'`).join(', ')}` : 'no ref names'} (${this.index.manifests.length} images)`;
    if (this.index.manifests.length === 0) return `OCI layout ${this.dir} holds no images (its index.json lists none).`;
    if (reference === undefined)
      return `OCI layout ${this.dir} holds several images and none is named 'latest'; ${has}. Name one: oci:<folder>:<ref-name>.`;
    if (isValidDigest(reference)) return `OCI layout ${this.dir} has no manifest ${reference}; ${has}.`;
    return `OCI layout ${this.dir} has no image named '${reference}'; ${has}.`;
  }

  async getBlobBytes(digest: string): Promise<Buffer> {
    return this.readBlob(digest, 32 << 20);
  }

  async copyBlob(digest: string, file: string, onBytes?: (n: number) => void): Promise<number> {
    const source = this.blobPath(digest);
    const algorithm = digest.split(':')[0];
    const hash = crypto.createHash(algorithm);
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        size += chunk.length;
        onBytes?.(chunk.length);
        done(null, chunk);
      },
    });
    try {
      await pipeline(fs.createReadStream(source, { highWaterMark: 1 << 20 }), tap, fs.createWriteStream(file));
      const actual = `${algorithm}:${hash.digest('hex')}`;
      if (actual !== digest) throw this.mismatch(digest, actual);
    } catch (err) {
      fs.rmSync(file, { force: true });
      throw err;
    }
    return size;
  }
}
