/**
 * What FetchModel and PublishModel need from a blob or object store, whatever the service:
 * Azure Blob Storage, S3, a plain HTTPS URL or an Azure DevOps artifact.
 */

/** One stored object (blob, S3 object, file in an artifact) as listed or stat'ed. */
export interface StoredObject {
  /** Full name (blob name, object key, path inside the artifact). */
  name: string;
  sizeBytes: number;
  lastModified: Date;
  /** Without quotes; empty when the store has none. */
  etag: string;
  /** Hex MD5 of the content, when the store knows it (Content-MD5, single-part S3 ETag). */
  contentMd5?: string;
  /** Hex SHA-256 the store vouches for: `sha256` metadata (PublishModel writes it) or an S3 full-object checksum. */
  sha256?: string;
  /** Metadata with lower-cased keys. Undefined when the listing does not carry it (S3): ask `details`. */
  metadata?: Record<string, string>;
  tags?: Record<string, string>;
  versionId?: string;
  snapshot?: string;
  /** Where it is, for logs and the manifest: never carries a credential. */
  uri: string;
}

/** One version or snapshot of an object (Azure Blob versioning / snapshots). */
export interface ObjectVersion {
  versionId?: string;
  snapshot?: string;
  isCurrentVersion: boolean;
  lastModified: Date;
  sizeBytes: number;
}

export interface ReadRangeOptions {
  signal: AbortSignal;
}

export interface ObjectStore {
  readonly kind: 'azureBlob' | 's3' | 'url' | 'pipelineArtifact';
  /** The container / bucket / artifact, for messages; never carries a credential. */
  readonly locationUri: string;
  /** Every object whose name starts with `prefix`, in name order. */
  list(prefix: string): Promise<StoredObject[]>;
  /** One object by exact name (optionally a version or snapshot), or undefined when missing. */
  stat(name: string, pin?: { versionId?: string; snapshot?: string }): Promise<StoredObject | undefined>;
  /** Fills in metadata and checksums a listing leaves out (one HEAD on S3; a no-op where listing has them). */
  details(obj: StoredObject): Promise<StoredObject>;
  /** Names of objects matching a blob index tag expression, with their tags (Azure only). */
  findByTags?(expression: string): Promise<Array<{ name: string; tags: Record<string, string> }>>;
  /** Bytes [offset, offset+count) of exactly this object; fails (not transiently) if it changed since listing. */
  readRange(
    obj: StoredObject,
    offset: number,
    count: number,
    opts: ReadRangeOptions,
  ): Promise<AsyncIterable<Uint8Array>>;
  /** Every version and snapshot of one object, oldest first, for the error when a pin matches none. */
  listVersions?(name: string): Promise<ObjectVersion[]>;
  /** What exists nearby when something is missing: containers or top-level names, for the error message. */
  describeWhatExists?(): Promise<string>;
}

export interface UploadOptions {
  sizeBytes: number;
  metadata: Record<string, string>;
  /** Blob index tags (Azure) or object tags (S3). */
  tags?: Record<string, string>;
  contentType?: string;
  /** Hex; stored as Content-MD5 where the store keeps it. */
  contentMd5?: string;
  /** Without it the upload is conditional on the object not existing (If-None-Match: *). */
  overwrite: boolean;
  blockSize: number;
  concurrency: number;
  onProgress?: (loadedBytes: number) => void;
}

/** The publishing side (PublishModel). */
export interface ObjectWriter {
  readonly locationUri: string;
  list(prefix: string): Promise<StoredObject[]>;
  upload(name: string, file: string, opts: UploadOptions): Promise<{ uri: string; etag: string }>;
  delete(name: string): Promise<void>;
  uriOf(name: string): string;
}

/** Bounds how many operations run at once; shared by every file of a folder model. */
export class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** Runs `fn` over items with at most `limit` at once; the first failure rejects (others are left to settle). */
export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export function base64ToHex(value: string | Uint8Array | undefined): string | undefined {
  if (!value) return undefined;
  const buf = typeof value === 'string' ? Buffer.from(value, 'base64') : Buffer.from(value);
  return buf.length ? buf.toString('hex') : undefined;
}

export function isSha256Hex(value: string | undefined): value is string {
  return !!value && /^[0-9a-f]{64}$/i.test(value);
}

/**
 * For stores without byte ranges: bytes [skip, skip+take) of a whole-object stream, so an
 * interrupted download can still resume (at the cost of re-reading what it already has).
 */
export async function* sliceStream(
  body: AsyncIterable<Uint8Array>,
  skip: number,
  take: number,
): AsyncGenerator<Uint8Array> {
  let position = 0;
  const end = skip + take;
  for await (const chunk of body) {
    const chunkEnd = position + chunk.byteLength;
    if (chunkEnd > skip) {
      const from = Math.max(0, skip - position);
      const to = Math.min(chunk.byteLength, end - position);
      if (to > from) yield chunk.subarray(from, to);
    }
    position = chunkEnd;
    if (position >= end) return;
  }
}
