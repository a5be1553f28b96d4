import type { FetchedManifest, RegistryClient } from './registry';

/**
 * Where a base image is read from: a registry repository or an OCI image layout folder.
 * resolveImage and the bake's copy of base layers need only these calls.
 */
export interface ImageSource {
  /** The manifest (or index) by tag/ref name or digest; undefined picks the source's default (latest, or a layout's only image). */
  getManifest(reference: string | undefined): Promise<SourceManifest | undefined>;
  /** Why `reference` was not found, in a sentence naming the source and what it has. */
  describeMissing(reference: string | undefined): Promise<string>;
  /** A small blob (a config) in memory, checked against its digest. */
  getBlobBytes(digest: string): Promise<Buffer>;
  /** Copies a blob to `file`, checked against its digest; returns its size. */
  copyBlob(digest: string, file: string, onBytes?: (n: number) => void): Promise<number>;
}

export interface SourceManifest extends FetchedManifest {
  /** The layout's `org.opencontainers.image.ref.name` of the entry, when the manifest came from a layout. */
  refName?: string;
}

/** A repository on a registry as an image source. */
export class RegistryImageSource implements ImageSource {
  constructor(
    readonly client: RegistryClient,
    readonly repository: string,
  ) {}

  getManifest(reference: string | undefined): Promise<SourceManifest | undefined> {
    return this.client.getManifest(this.repository, reference ?? 'latest');
  }

  async describeMissing(reference: string | undefined): Promise<string> {
    return reference?.startsWith('sha256:')
      ? `repository ${this.repository} on ${this.client.registry} has no manifest ${reference}.`
      : `repository ${this.repository} on ${this.client.registry} has no tag '${reference ?? 'latest'}' (or the repository does not exist).`;
  }

  getBlobBytes(digest: string): Promise<Buffer> {
    return this.client.getBlobBytes(this.repository, digest);
  }

  copyBlob(digest: string, file: string, onBytes?: (n: number) => void): Promise<number> {
    return this.client.downloadBlob(this.repository, digest, file, onBytes);
  }
}
