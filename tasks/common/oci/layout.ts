import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { TaskError } from '../errors';
import { tempPathBeside } from '../fsutil';
import type { Descriptor, ImageIndex } from './image';
import { MediaType } from './mediaTypes';

/**
 * An OCI image layout folder (oci-layout, index.json, blobs/sha256/…), as skopeo and podman read
 * it with `oci:<dir>:<tag>`. Blobs are content-addressed, each written through a temp file and
 * renamed; index.json is replaced last, so a failed run never leaves a layout pointing at
 * missing blobs. An existing layout keeps its other images; the same tag is replaced.
 */

export interface LayoutBlob {
  digest: string;
  size: number;
  /** Where the bytes are: a reader, bytes, or a download into the given path. */
  open?: () => Readable;
  bytes?: Buffer;
  download?: (target: string) => Promise<void>;
}

const REF_NAME = 'org.opencontainers.image.ref.name';

function blobPath(dir: string, digest: string): string {
  const [algorithm, hex] = digest.split(':');
  return path.join(dir, 'blobs', algorithm, hex);
}

export function readLayoutIndex(dir: string): ImageIndex | undefined {
  const file = path.join(dir, 'index.json');
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as ImageIndex;
}

export async function writeOciLayout(
  dir: string,
  image: {
    manifestBytes: Buffer;
    manifestDigest: string;
    manifestMediaType: string;
    blobs: LayoutBlob[];
    refNames: string[];
    annotations?: Record<string, string>;
  },
): Promise<void> {
  if (fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory())
      throw new TaskError(`${dir} exists and is not a folder; give a folder for the OCI layout.`);
    const entries = fs.readdirSync(dir);
    if (entries.length > 0 && !entries.includes('oci-layout'))
      throw new TaskError(`${dir} is not empty and is not an OCI image layout; give an empty or new folder.`);
  }
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const layoutFile = path.join(dir, 'oci-layout');
  if (!fs.existsSync(layoutFile)) fs.writeFileSync(layoutFile, JSON.stringify({ imageLayoutVersion: '1.0.0' }));

  for (const blob of [
    ...image.blobs,
    { digest: image.manifestDigest, size: image.manifestBytes.length, bytes: image.manifestBytes },
  ]) {
    const target = blobPath(dir, blob.digest);
    if (fs.existsSync(target) && fs.statSync(target).size === blob.size) continue;
    const temp = tempPathBeside(target);
    try {
      if (blob.bytes) fs.writeFileSync(temp, blob.bytes);
      else if (blob.open) await pipeline(blob.open(), fs.createWriteStream(temp));
      else if (blob.download) await blob.download(temp);
      else throw new Error(`no source for blob ${blob.digest}`);
      if (fs.statSync(temp).size !== blob.size)
        throw new TaskError(
          `Blob ${blob.digest} for the OCI layout has ${fs.statSync(temp).size} bytes, not ${blob.size}.`,
        );
      fs.renameSync(temp, target);
    } catch (err) {
      fs.rmSync(temp, { force: true });
      throw err;
    }
  }

  const index: ImageIndex = readLayoutIndex(dir) ?? { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  const refNames = new Set(image.refNames);
  index.manifests = index.manifests.filter((m) => !refNames.has(m.annotations?.[REF_NAME] ?? '\0'));
  const entries: Descriptor[] = (image.refNames.length ? image.refNames : [undefined]).map((ref) => ({
    mediaType: image.manifestMediaType,
    digest: image.manifestDigest,
    size: image.manifestBytes.length,
    ...(ref || image.annotations
      ? { annotations: { ...(image.annotations ?? {}), ...(ref ? { [REF_NAME]: ref } : {}) } }
      : {}),
  }));
  index.manifests.push(...entries);
  const indexFile = path.join(dir, 'index.json');
  const temp = tempPathBeside(indexFile);
  fs.writeFileSync(temp, JSON.stringify(index));
  fs.renameSync(temp, indexFile);
}
