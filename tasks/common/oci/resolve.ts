import { TaskError } from '../errors';
import {
  checkImage,
  formatPlatform,
  type Image,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type Platform,
  selectPlatform,
} from './image';
import type { ImageSource } from './imageSource';
import { isImageManifestMediaType, isIndexMediaType, MediaType } from './mediaTypes';

/** The base image: its manifest (for the platform asked for) and config, read from a registry or a layout. */
export interface ResolvedImage {
  image: Image;
  /** Digest of the platform's image manifest. */
  manifestDigest: string;
  /** Digest of the index it was picked from, when the reference named a multi-platform index. */
  indexDigest?: string;
  /** The layout ref name of the image, when it came from an OCI layout. */
  refName?: string;
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

/**
 * Reads the image `reference` names in `source` (a tag or ref name, a digest, or undefined for the
 * source's default); an index is resolved to `platform`. `display` names the image in messages.
 */
export async function resolveImage(
  source: ImageSource,
  reference: string | undefined,
  platform: Platform,
  display: string,
): Promise<ResolvedImage> {
  const top = await source.getManifest(reference);
  if (!top) throw new ImageNotFoundError(`Image ${display} was not found: ${await source.describeMissing(reference)}`);
  let manifestBytes = top.bytes;
  let mediaType = top.mediaType;
  let manifestDigest = top.digest;
  let indexDigest: string | undefined;
  if (isIndexMediaType(mediaType)) {
    const index = parseJson<ImageIndex>(top.bytes, `The index of ${display}`);
    const entry = selectPlatform(index, platform);
    if (!entry) {
      const available = index.manifests
        .filter((m) => m.platform && m.platform.os !== 'unknown')
        .map((m) => formatPlatform(m.platform!));
      throw new ImageNotFoundError(
        `Image ${display} has no ${formatPlatform(platform)} variant; it has ${available.join(', ') || 'none with a platform'}. Set the platform input to one of these.`,
      );
    }
    const picked = await source.getManifest(entry.digest);
    if (!picked)
      throw new ImageNotFoundError(
        `Image ${display} lists ${formatPlatform(platform)} as ${entry.digest}, but ${await source.describeMissing(entry.digest)}`,
      );
    indexDigest = top.digest;
    manifestBytes = picked.bytes;
    mediaType = picked.mediaType || entry.mediaType;
    manifestDigest = picked.digest;
  }
  if (mediaType === MediaType.dockerManifestV1Signed || (!isImageManifestMediaType(mediaType) && !mediaType)) {
    throw new TaskError(
      `Image ${display} uses the old Docker v1 manifest format (${mediaType || 'no media type'}), which cannot be extended. Push the base image again with a current client.`,
    );
  }
  if (!isImageManifestMediaType(mediaType))
    throw new TaskError(`Image ${display} has a manifest of type ${mediaType}, which is not a container image.`);
  const manifest = parseJson<ImageManifest>(manifestBytes, `The manifest of ${display}`);
  const configBytes = await source.getBlobBytes(manifest.config.digest);
  const config = parseJson<ImageConfig>(configBytes, `The config of ${display}`);
  const image: Image = { manifestMediaType: mediaType, manifest, config };
  try {
    checkImage(image);
  } catch (err) {
    throw new TaskError(`Image ${display} cannot be extended: ${(err as Error).message}.`);
  }
  return { image, manifestDigest, indexDigest, refName: top.refName };
}
