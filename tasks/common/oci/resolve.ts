import { TaskError } from '../errors';
import { checkImage, formatPlatform, selectPlatform, type Image, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from './image';
import { isImageManifestMediaType, isIndexMediaType, MediaType } from './mediaTypes';
import { formatReference, manifestReferenceOf, type ImageReference } from './reference';
import type { RegistryClient } from './registry';

/** The base image: its manifest (for the platform asked for) and config, read from the registry. */
export interface ResolvedImage {
  reference: ImageReference;
  image: Image;
  /** Digest of the platform's image manifest. */
  manifestDigest: string;
  /** Digest of the index it was picked from, when the reference named a multi-platform index. */
  indexDigest?: string;
}

export class ImageNotFoundError extends TaskError {
  constructor(message: string) {
    super(message);
    this.name = 'ImageNotFoundError';
  }
}

function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch {
    throw new TaskError(`${what} is not valid JSON.`);
  }
}

export async function resolveImage(client: RegistryClient, ref: ImageReference, platform: Platform): Promise<ResolvedImage> {
  const display = formatReference(ref);
  const top = await client.getManifest(ref.repository, manifestReferenceOf(ref));
  if (!top) {
    throw new ImageNotFoundError(
      ref.digest
        ? `Image ${display} was not found: repository ${ref.repository} on ${ref.registry} has no manifest ${ref.digest}.`
        : `Image ${display} was not found: repository ${ref.repository} on ${ref.registry} has no tag '${ref.tag ?? 'latest'}' (or the repository does not exist).`,
    );
  }
  let manifestBytes = top.bytes;
  let mediaType = top.mediaType;
  let manifestDigest = top.digest;
  let indexDigest: string | undefined;
  if (isIndexMediaType(mediaType)) {
    const index = parseJson<ImageIndex>(top.bytes, `The index of ${display}`);
    const entry = selectPlatform(index, platform);
    if (!entry) {
      const available = index.manifests.filter((m) => m.platform && m.platform.os !== 'unknown').map((m) => formatPlatform(m.platform!));
      throw new ImageNotFoundError(`Image ${display} has no ${formatPlatform(platform)} variant; it has ${available.join(', ') || 'none with a platform'}. Set the platform input to one of these.`);
    }
    const picked = await client.getManifest(ref.repository, entry.digest);
    if (!picked) throw new ImageNotFoundError(`Image ${display} lists ${formatPlatform(platform)} as ${entry.digest}, but the registry does not have that manifest.`);
    indexDigest = top.digest;
    manifestBytes = picked.bytes;
    mediaType = picked.mediaType || entry.mediaType;
    manifestDigest = picked.digest;
  }
  if (mediaType === MediaType.dockerManifestV1Signed || (!isImageManifestMediaType(mediaType) && !mediaType)) {
    throw new TaskError(`Image ${display} uses the old Docker v1 manifest format (${mediaType || 'no media type'}), which cannot be extended. Push the base image again with a current client.`);
  }
  if (!isImageManifestMediaType(mediaType)) throw new TaskError(`Image ${display} has a manifest of type ${mediaType}, which is not a container image.`);
  const manifest = parseJson<ImageManifest>(manifestBytes, `The manifest of ${display}`);
  const configBytes = await client.getBlobBytes(ref.repository, manifest.config.digest);
  const config = parseJson<ImageConfig>(configBytes, `The config of ${display}`);
  const image: Image = { manifestMediaType: mediaType, manifest, config };
  try {
    checkImage(image);
  } catch (err) {
    throw new TaskError(`Image ${display} cannot be extended: ${(err as Error).message}.`);
  }
  return { reference: ref, image, manifestDigest, indexDigest };
}
