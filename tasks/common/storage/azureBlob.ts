import type { TokenCredential } from '@azure/identity';
import {
  AnonymousCredential,
  type BlobClient,
  type BlobGetPropertiesResponse,
  type BlobItem,
  BlobServiceClient,
  type ContainerClient,
  newPipeline,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';

import { errorMessage, TaskError } from '../errors';
import { withRetry } from '../retry';
import { registerSecret, scrub } from '../secrets';
import {
  base64ToHex,
  isSha256Hex,
  type ObjectStore,
  type ObjectVersion,
  type ObjectWriter,
  type StoredObject,
  type UploadOptions,
} from './objectStore';

/** How a task authenticates to Blob Storage: one of the three the task inputs offer. */
export type AzureBlobAuth =
  | { kind: 'serviceConnection'; credential: TokenCredential; storageAccount: string; storageSuffix: string }
  | { kind: 'connectionString'; connectionString: string }
  /** A SAS token (`sv=...&sig=...`) or an account/container URL carrying one. */
  | { kind: 'sas'; sas: string; storageAccount?: string };

export interface AzureBlobLocation {
  auth: AzureBlobAuth;
  container: string;
  /** Overrides the endpoint (sovereign clouds, private endpoints, Azurite): `https://acct.blob.core.chinacloudapi.cn`, `http://127.0.0.1:10000/devstoreaccount1`. */
  blobEndpoint?: string;
}

export interface ConnectionStringParts {
  accountName?: string;
  accountKey?: string;
  blobEndpoint?: string;
  sas?: string;
}

/** Parses an Azure Storage connection string; every credential in it is registered as a secret. */
export function parseConnectionString(connectionString: string): ConnectionStringParts {
  const fields: Record<string, string> = {};
  for (const part of connectionString.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim();
  }
  if (/^true$/i.test(fields.usedevelopmentstorage ?? '')) {
    return {
      accountName: 'devstoreaccount1',
      accountKey: registerSecret(DEV_STORAGE_KEY),
      blobEndpoint: fields.developmentstorageproxyuri
        ? `${fields.developmentstorageproxyuri}/devstoreaccount1`
        : 'http://127.0.0.1:10000/devstoreaccount1',
    };
  }
  const accountName = fields.accountname;
  const protocol = fields.defaultendpointsprotocol ?? 'https';
  const suffix = fields.endpointsuffix ?? 'core.windows.net';
  const blobEndpoint = fields.blobendpoint ?? (accountName ? `${protocol}://${accountName}.blob.${suffix}` : undefined);
  return {
    accountName,
    accountKey: registerSecret(fields.accountkey),
    blobEndpoint,
    sas: registerSecret(fields.sharedaccesssignature),
  };
}

/** Azurite's published development key (not a secret, but treated as one like any key). */
const DEV_STORAGE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

function registerSasParts(sas: string): void {
  registerSecret(sas);
  const sig = /(?:^|[?&])sig=([^&]+)/.exec(sas)?.[1];
  if (sig) {
    registerSecret(sig);
    registerSecret(decodeURIComponent(sig));
  }
}

function withSas(endpoint: string, sas: string): string {
  const token = sas.replace(/^\?/, '');
  return `${endpoint}${endpoint.includes('?') ? '&' : '?'}${token}`;
}

/**
 * A BlobServiceClient for the location's account. The SDK's own retries are off: every call
 * goes through our withRetry (logged, bounded, honouring Retry-After) and ranges resume themselves.
 */
export function blobServiceClient(loc: AzureBlobLocation): BlobServiceClient {
  const pipelineOptions = {
    retryOptions: { maxTries: 1 },
    userAgentOptions: { userAgentPrefix: 'model-delivery-azure-pipelines' },
  };
  const override = loc.blobEndpoint?.replace(/\/+$/, '');
  const auth = loc.auth;
  switch (auth.kind) {
    case 'serviceConnection': {
      const endpoint = override ?? `https://${auth.storageAccount}.blob.${auth.storageSuffix}`;
      return new BlobServiceClient(endpoint, newPipeline(auth.credential, pipelineOptions));
    }
    case 'connectionString': {
      const parts = parseConnectionString(auth.connectionString);
      const endpoint = override ?? parts.blobEndpoint?.replace(/\/+$/, '');
      if (!endpoint)
        throw new TaskError(
          "The connection string names no account (AccountName) or BlobEndpoint. Copy the whole connection string from the storage account's Access keys page.",
        );
      if (parts.accountName && parts.accountKey) {
        return new BlobServiceClient(
          endpoint,
          newPipeline(new StorageSharedKeyCredential(parts.accountName, parts.accountKey), pipelineOptions),
        );
      }
      if (parts.sas) {
        registerSasParts(parts.sas);
        return new BlobServiceClient(
          withSas(endpoint, parts.sas),
          newPipeline(new AnonymousCredential(), pipelineOptions),
        );
      }
      throw new TaskError(
        'The connection string has neither AccountKey nor SharedAccessSignature. Use a connection string with a key or a SAS.',
      );
    }
    case 'sas': {
      registerSasParts(auth.sas);
      if (/^https?:\/\//i.test(auth.sas)) {
        const url = new URL(auth.sas);
        let base = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
        // A container SAS URL: the account endpoint is everything before the container.
        if (base.endsWith(`/${loc.container}`)) base = base.slice(0, -loc.container.length - 1);
        return new BlobServiceClient(
          withSas(override ?? base, url.search),
          newPipeline(new AnonymousCredential(), pipelineOptions),
        );
      }
      const endpoint =
        override ?? (auth.storageAccount ? `https://${auth.storageAccount}.blob.core.windows.net` : undefined);
      if (!endpoint)
        throw new TaskError(
          'A SAS token alone does not say which account it is for: give the storage account name or a blob endpoint, or use the full SAS URL.',
        );
      return new BlobServiceClient(
        withSas(endpoint, auth.sas),
        newPipeline(new AnonymousCredential(), pipelineOptions),
      );
    }
  }
}

/** A URL as shown to users and written to manifests: no query string, so no SAS. */
export function displayUrl(url: string): string {
  return url.split('?')[0];
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}

function codeOf(err: unknown): string | undefined {
  return (
    (err as { code?: string; details?: { errorCode?: string } })?.details?.errorCode ?? (err as { code?: string })?.code
  );
}

function toStoredFromItem(item: BlobItem, blobUrl: string): StoredObject {
  const metadata = lowerKeys(item.metadata);
  return {
    name: item.name,
    sizeBytes: item.properties.contentLength ?? 0,
    lastModified: item.properties.lastModified,
    etag: stripQuotes(item.properties.etag),
    contentMd5: base64ToHex(item.properties.contentMD5),
    sha256: isSha256Hex(metadata.sha256) ? metadata.sha256.toLowerCase() : undefined,
    metadata,
    tags: item.tags,
    versionId: item.versionId,
    snapshot: item.snapshot || undefined,
    uri: displayUrl(blobUrl),
  };
}

function toStoredFromProperties(
  name: string,
  props: BlobGetPropertiesResponse,
  client: BlobClient,
  pin?: { versionId?: string; snapshot?: string },
): StoredObject {
  const metadata = lowerKeys(props.metadata);
  const uri = new URL(displayUrl(client.url));
  if (pin?.snapshot) uri.searchParams.set('snapshot', pin.snapshot);
  if (pin?.versionId) uri.searchParams.set('versionid', pin.versionId);
  return {
    name,
    sizeBytes: props.contentLength ?? 0,
    lastModified: props.lastModified ?? new Date(0),
    etag: stripQuotes(props.etag),
    contentMd5: base64ToHex(props.contentMD5),
    sha256: isSha256Hex(metadata.sha256) ? metadata.sha256.toLowerCase() : undefined,
    metadata,
    versionId: pin?.versionId ?? props.versionId,
    snapshot: pin?.snapshot,
    uri: uri.toString(),
  };
}

export function lowerKeys(record: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(record ?? {})) out[k.toLowerCase()] = v;
  return out;
}

function stripQuotes(etag: string | undefined): string {
  return (etag ?? '').replace(/^(W\/)?"(.*)"$/, '$2');
}

/** Blob Storage as an ObjectStore (FetchModel) and ObjectWriter (PublishModel). */
export class AzureBlobStore implements ObjectStore, ObjectWriter {
  readonly kind = 'azureBlob' as const;
  readonly container: ContainerClient;
  readonly locationUri: string;

  constructor(
    readonly service: BlobServiceClient,
    readonly containerName: string,
  ) {
    this.container = service.getContainerClient(containerName);
    this.locationUri = displayUrl(this.container.url);
  }

  static fromLocation(loc: AzureBlobLocation): AzureBlobStore {
    return new AzureBlobStore(blobServiceClient(loc), loc.container);
  }

  private blob(name: string, pin?: { versionId?: string; snapshot?: string }): BlobClient {
    let client = this.container.getBlobClient(name);
    if (pin?.snapshot) client = client.withSnapshot(pin.snapshot);
    if (pin?.versionId) client = client.withVersion(pin.versionId);
    return client;
  }

  async list(prefix: string): Promise<StoredObject[]> {
    return this.call(`list blobs under '${prefix}'`, async () => {
      const out: StoredObject[] = [];
      for await (const item of this.container.listBlobsFlat({ prefix: prefix || undefined, includeMetadata: true })) {
        out.push(toStoredFromItem(item, this.container.getBlobClient(item.name).url));
      }
      return out;
    });
  }

  async stat(name: string, pin?: { versionId?: string; snapshot?: string }): Promise<StoredObject | undefined> {
    const client = this.blob(name, pin);
    try {
      const props = await withRetry(() => client.getProperties(), { what: `get properties of ${name}` });
      return toStoredFromProperties(name, props, client, pin);
    } catch (err) {
      if (statusOf(err) === 404 && codeOf(err) !== 'ContainerNotFound') return undefined;
      throw this.explain(err, `read the properties of '${name}'`);
    }
  }

  async details(obj: StoredObject): Promise<StoredObject> {
    return obj;
  }

  /** List Blobs with include=versions,snapshots: the versions (current one flagged) and snapshots of exactly `name`. */
  async listVersions(name: string): Promise<ObjectVersion[]> {
    return this.call(`list the versions of '${name}'`, async () => {
      const out: ObjectVersion[] = [];
      for await (const item of this.container.listBlobsFlat({
        prefix: name,
        includeVersions: true,
        includeSnapshots: true,
      })) {
        if (item.name !== name) continue;
        out.push({
          versionId: item.versionId,
          snapshot: item.snapshot || undefined,
          isCurrentVersion: !!item.isCurrentVersion || (!item.versionId && !item.snapshot),
          lastModified: item.properties.lastModified,
          sizeBytes: item.properties.contentLength ?? 0,
        });
      }
      return out;
    });
  }

  async findByTags(expression: string): Promise<Array<{ name: string; tags: Record<string, string> }>> {
    return this.call(`find blobs by tags ${expression}`, async () => {
      const out: Array<{ name: string; tags: Record<string, string> }> = [];
      for await (const item of this.container.findBlobsByTags(expression))
        out.push({ name: item.name, tags: item.tags ?? {} });
      return out;
    });
  }

  async readRange(
    obj: StoredObject,
    offset: number,
    count: number,
    opts: { signal: AbortSignal },
  ): Promise<AsyncIterable<Uint8Array>> {
    const client = this.blob(obj.name, { snapshot: obj.snapshot, versionId: obj.versionId });
    try {
      const res = await client.download(offset, count, {
        abortSignal: opts.signal,
        maxRetryRequests: 0,
        // Snapshots and versions are immutable; a live blob must still be the one we listed.
        conditions: obj.etag && !obj.snapshot && !obj.versionId ? { ifMatch: `"${obj.etag}"` } : undefined,
      });
      if (!res.readableStreamBody) throw new TaskError(`Blob Storage returned no body for '${obj.name}'.`);
      return res.readableStreamBody as AsyncIterable<Uint8Array>;
    } catch (err) {
      if (statusOf(err) === 412)
        throw new TaskError(
          `'${obj.name}' changed while it was being downloaded (its ETag is no longer ${obj.etag}). Run the task again to fetch the new version.`,
        );
      if (statusOf(err) !== undefined && [401, 403, 404].includes(statusOf(err)!))
        throw this.explain(err, `download '${obj.name}'`);
      throw err;
    }
  }

  async describeWhatExists(): Promise<string> {
    try {
      const names: string[] = [];
      for await (const c of this.service.listContainers()) {
        names.push(c.name);
        if (names.length >= 50) break;
      }
      return names.length
        ? `Containers in ${displayUrl(this.service.url)}: ${names.join(', ')}.`
        : `${displayUrl(this.service.url)} has no containers.`;
    } catch {
      return '(The credential may not list containers, so what exists is not shown.)';
    }
  }

  async exists(name: string): Promise<boolean> {
    return (await this.stat(name)) !== undefined;
  }

  async upload(name: string, file: string, opts: UploadOptions): Promise<{ uri: string; etag: string }> {
    const client = this.container.getBlockBlobClient(name);
    return this.call(
      `upload ${name}`,
      async () => {
        const res = await client.uploadFile(file, {
          blockSize: opts.blockSize,
          concurrency: opts.concurrency,
          metadata: opts.metadata,
          tags: opts.tags && Object.keys(opts.tags).length ? opts.tags : undefined,
          blobHTTPHeaders: {
            blobContentType: opts.contentType,
            blobContentMD5: opts.contentMd5 ? Buffer.from(opts.contentMd5, 'hex') : undefined,
          },
          conditions: opts.overwrite ? undefined : { ifNoneMatch: '*' },
          onProgress: opts.onProgress ? (p) => opts.onProgress!(p.loadedBytes) : undefined,
        });
        return { uri: displayUrl(client.url), etag: stripQuotes(res.etag) };
      },
      (err) => {
        if (statusOf(err) === 409 || codeOf(err) === 'BlobAlreadyExists' || statusOf(err) === 412) {
          return new TaskError(
            `'${name}' already exists in ${this.locationUri}; it was published meanwhile. Publish a new version, or set overwrite to true.`,
          );
        }
        return undefined;
      },
    );
  }

  async delete(name: string): Promise<void> {
    await this.call(`delete ${name}`, () =>
      this.container.getBlobClient(name).deleteIfExists({ deleteSnapshots: 'include' }),
    );
  }

  uriOf(name: string): string {
    return displayUrl(this.container.getBlobClient(name).url);
  }

  /** Runs a call with retries and turns the service's errors into messages a user can act on. */
  private async call<T>(what: string, fn: () => Promise<T>, special?: (err: unknown) => Error | undefined): Promise<T> {
    try {
      return await withRetry(fn, { what });
    } catch (err) {
      throw special?.(err) ?? (await this.explainAsync(err, what));
    }
  }

  private async explainAsync(err: unknown, what: string): Promise<Error> {
    if (codeOf(err) === 'ContainerNotFound') {
      return new TaskError(
        `Container '${this.containerName}' does not exist at ${displayUrl(this.service.url)}. ${await this.describeWhatExists()}`,
      );
    }
    return this.explain(err, what);
  }

  private explain(err: unknown, what: string): Error {
    if (err instanceof TaskError) return err;
    const status = statusOf(err);
    const first = scrub(errorMessage(err)).split('\n')[0];
    if (status === 403 || status === 401) {
      return new TaskError(
        `Blob Storage refused to ${what} in ${this.locationUri} (HTTP ${status}: ${first}). Check that the credential is valid and allowed to read (and list) this container: a SAS needs r and l permissions; a service principal needs the Storage Blob Data Reader role.`,
        { cause: err },
      );
    }
    if (codeOf(err) === 'ContainerNotFound')
      return new TaskError(`Container '${this.containerName}' does not exist at ${displayUrl(this.service.url)}.`, {
        cause: err,
      });
    if (status !== undefined)
      return new TaskError(`Could not ${what} in ${this.locationUri}: HTTP ${status}: ${first}`, { cause: err });
    return new TaskError(`Could not ${what} in ${this.locationUri}: ${first}`, { cause: err });
  }
}
