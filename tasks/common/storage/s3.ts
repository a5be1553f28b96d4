import * as fs from 'node:fs';

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';

import { errorMessage, TaskError } from '../errors';
import { withRetry } from '../retry';
import { registerSecret, scrub } from '../secrets';
import { lowerKeys } from './azureBlob';
import {
  base64ToHex,
  isSha256Hex,
  mapLimited,
  type ObjectStore,
  type ObjectWriter,
  type StoredObject,
  type UploadOptions,
} from './objectStore';

export interface S3Location {
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** S3-compatible stores (MinIO, Ceph, s3rver): their URL. Path-style addressing is then used. */
  endpoint?: string;
  forcePathStyle?: boolean;
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function stripQuotes(etag: string | undefined): string {
  return (etag ?? '').replace(/^(W\/)?"(.*)"$/, '$2');
}

/** A single-part upload's ETag is the hex MD5 of the content; a multipart one ends in -<parts> and is not. */
function md5FromEtag(etag: string): string | undefined {
  return /^[0-9a-f]{32}$/i.test(etag) ? etag.toLowerCase() : undefined;
}

export class S3Store implements ObjectStore, ObjectWriter {
  readonly kind = 's3' as const;
  readonly client: S3Client;
  readonly locationUri: string;

  constructor(readonly loc: S3Location) {
    registerSecret(loc.secretAccessKey);
    registerSecret(loc.sessionToken);
    this.client = new S3Client({
      region: loc.region,
      endpoint: loc.endpoint,
      forcePathStyle: loc.forcePathStyle ?? !!loc.endpoint,
      credentials: {
        accessKeyId: loc.accessKeyId,
        secretAccessKey: loc.secretAccessKey,
        sessionToken: loc.sessionToken,
      },
      // Our own retry loop logs, bounds and resumes; the SDK's would hide faults and restart ranges.
      maxAttempts: 1,
      // S3-compatible stores often reject the newer default CRC trailers; checksums are verified by us.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    this.locationUri = loc.endpoint ? `${loc.endpoint.replace(/\/+$/, '')}/${loc.bucket}` : `s3://${loc.bucket}`;
  }

  uriOf(key: string): string {
    return `${this.locationUri}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  async list(prefix: string): Promise<StoredObject[]> {
    return this.call(`list objects under '${prefix}'`, async () => {
      const out: StoredObject[] = [];
      let token: string | undefined;
      do {
        const page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.loc.bucket, Prefix: prefix || undefined, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) {
          if (!o.Key) continue;
          const etag = stripQuotes(o.ETag);
          out.push({
            name: o.Key,
            sizeBytes: o.Size ?? 0,
            lastModified: o.LastModified ?? new Date(0),
            etag,
            contentMd5: md5FromEtag(etag),
            uri: this.uriOf(o.Key),
          });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    });
  }

  private fromHead(key: string, head: HeadObjectCommandOutput, versionId?: string): StoredObject {
    const metadata = lowerKeys(head.Metadata);
    const etag = stripQuotes(head.ETag);
    // A full-object SHA-256 checksum (not the composite one of a multipart upload) is the content's digest.
    const checksum =
      head.ChecksumSHA256 && head.ChecksumType !== 'COMPOSITE' ? base64ToHex(head.ChecksumSHA256) : undefined;
    const sha256 = isSha256Hex(metadata.sha256) ? metadata.sha256.toLowerCase() : checksum;
    return {
      name: key,
      sizeBytes: head.ContentLength ?? 0,
      lastModified: head.LastModified ?? new Date(0),
      etag,
      contentMd5: md5FromEtag(etag),
      sha256,
      metadata,
      versionId: versionId ?? (head.VersionId && head.VersionId !== 'null' ? head.VersionId : undefined),
      uri: versionId ? `${this.uriOf(key)}?versionId=${encodeURIComponent(versionId)}` : this.uriOf(key),
    };
  }

  async stat(name: string, pin?: { versionId?: string }): Promise<StoredObject | undefined> {
    try {
      const head = await withRetry(
        () =>
          this.client.send(
            new HeadObjectCommand({
              Bucket: this.loc.bucket,
              Key: name,
              VersionId: pin?.versionId,
              ChecksumMode: 'ENABLED',
            }),
          ),
        { what: `HEAD ${name}` },
      );
      return this.fromHead(name, head, pin?.versionId);
    } catch (err) {
      if (statusOf(err) === 404) {
        await this.assertBucketExists();
        return undefined;
      }
      throw await this.explain(err, `read '${name}'`);
    }
  }

  async details(obj: StoredObject): Promise<StoredObject> {
    if (obj.metadata) return obj;
    const full = await this.stat(obj.name, { versionId: obj.versionId });
    if (!full)
      throw new TaskError(`'${obj.name}' was listed in ${this.locationUri} but is gone now. Run the task again.`);
    return full;
  }

  async readRange(
    obj: StoredObject,
    offset: number,
    count: number,
    opts: { signal: AbortSignal },
  ): Promise<AsyncIterable<Uint8Array>> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.loc.bucket,
          Key: obj.name,
          VersionId: obj.versionId,
          Range: `bytes=${offset}-${offset + count - 1}`,
          IfMatch: obj.etag && !obj.versionId ? `"${obj.etag}"` : undefined,
        }),
        { abortSignal: opts.signal },
      );
      if (!res.Body) throw new TaskError(`S3 returned no body for '${obj.name}'.`);
      return res.Body as AsyncIterable<Uint8Array>;
    } catch (err) {
      if (statusOf(err) === 412)
        throw new TaskError(
          `'${obj.name}' changed while it was being downloaded (its ETag is no longer ${obj.etag}). Run the task again to fetch the new version.`,
        );
      const status = statusOf(err);
      if (status !== undefined && [401, 403, 404].includes(status))
        throw await this.explain(err, `download '${obj.name}'`);
      throw err;
    }
  }

  async describeWhatExists(): Promise<string> {
    try {
      const res = await this.client.send(new ListBucketsCommand({}));
      const names = (res.Buckets ?? []).map((b) => b.Name).filter(Boolean);
      return names.length ? `Buckets visible to this key: ${names.join(', ')}.` : 'This key sees no buckets.';
    } catch {
      return '(The key may not list buckets, so what exists is not shown.)';
    }
  }

  async upload(key: string, file: string, opts: UploadOptions): Promise<{ uri: string; etag: string }> {
    if (!opts.overwrite && (await this.stat(key))) {
      throw new TaskError(
        `'${key}' already exists in ${this.locationUri}; it was published meanwhile. Publish a new version, or set overwrite to true.`,
      );
    }
    const tagging = opts.tags && Object.keys(opts.tags).length ? new URLSearchParams(opts.tags).toString() : undefined;
    const common = {
      Bucket: this.loc.bucket,
      Key: key,
      Metadata: opts.metadata,
      ContentType: opts.contentType,
      Tagging: tagging,
    };
    if (opts.sizeBytes <= opts.blockSize) {
      const res = await this.call(`upload ${key}`, () =>
        this.client.send(
          new PutObjectCommand({
            ...common,
            Body: fs.readFileSync(file),
            ContentMD5: opts.contentMd5 ? Buffer.from(opts.contentMd5, 'hex').toString('base64') : undefined,
          }),
        ),
      );
      opts.onProgress?.(opts.sizeBytes);
      return { uri: this.uriOf(key), etag: stripQuotes(res.ETag) };
    }
    const created = await this.call(`start multipart upload of ${key}`, () =>
      this.client.send(new CreateMultipartUploadCommand(common)),
    );
    const uploadId = created.UploadId!;
    try {
      const partCount = Math.ceil(opts.sizeBytes / opts.blockSize);
      let loaded = 0;
      const parts = await mapLimited(
        Array.from({ length: partCount }, (_, i) => i),
        opts.concurrency,
        async (i) => {
          const start = i * opts.blockSize;
          const length = Math.min(opts.blockSize, opts.sizeBytes - start);
          const res = await this.call(`upload part ${i + 1} of ${key}`, async () => {
            const body = Buffer.allocUnsafe(length);
            const handle = await fs.promises.open(file, 'r');
            try {
              await handle.read(body, 0, length, start);
            } finally {
              await handle.close();
            }
            return this.client.send(
              new UploadPartCommand({
                Bucket: this.loc.bucket,
                Key: key,
                UploadId: uploadId,
                PartNumber: i + 1,
                Body: body,
                ContentLength: length,
              }),
            );
          });
          loaded += length;
          opts.onProgress?.(loaded);
          return { ETag: res.ETag, PartNumber: i + 1 };
        },
      );
      const done = await this.call(`complete multipart upload of ${key}`, () =>
        this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.loc.bucket,
            Key: key,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
          }),
        ),
      );
      return { uri: this.uriOf(key), etag: stripQuotes(done.ETag) };
    } catch (err) {
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket: this.loc.bucket, Key: key, UploadId: uploadId }))
        .catch(() => undefined);
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.call(`delete ${key}`, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.loc.bucket, Key: key })),
    );
  }

  private async assertBucketExists(): Promise<void> {
    try {
      // A listing with an unlikely prefix: cheap, and NoSuchBucket when the bucket is missing.
      await this.client.send(new ListObjectsV2Command({ Bucket: this.loc.bucket, Prefix: '\u0000none/' }));
    } catch (err) {
      throw await this.explain(err, 'list the bucket');
    }
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await withRetry(fn, { what });
    } catch (err) {
      throw await this.explain(err, what);
    }
  }

  private async explain(err: unknown, what: string): Promise<Error> {
    if (err instanceof TaskError) return err;
    const status = statusOf(err);
    const name = (err as { name?: string })?.name;
    const first = scrub(errorMessage(err)).split('\n')[0];
    if (name === 'NoSuchBucket')
      return new TaskError(
        `Bucket '${this.loc.bucket}' does not exist at ${this.loc.endpoint ?? `region ${this.loc.region}`}. ${await this.describeWhatExists()}`,
        { cause: err },
      );
    if (status === 403 || status === 401) {
      return new TaskError(
        `S3 refused to ${what} in ${this.locationUri} (HTTP ${status}: ${first}). Check the access key and that its policy allows s3:ListBucket and s3:GetObject on this bucket.`,
        { cause: err },
      );
    }
    return new TaskError(`Could not ${what} in ${this.locationUri}: ${status ? `HTTP ${status}: ` : ''}${first}`, {
      cause: err,
    });
  }
}
