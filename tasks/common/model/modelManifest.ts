import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { writeAtomically } from '../fsutil';

/** File name of the manifest FetchModel writes beside the model (in the target folder). */
export const MODEL_MANIFEST_FILE = 'model-manifest.json';

/**
 * `model-manifest.json`: what FetchModel put on the agent and where it came from. BakeModelImage
 * reads it for image labels; anyone may read it to know exactly which model a build used.
 *
 * Schema version 1. Fields are only ever added; a breaking change bumps `schemaVersion`.
 */
export interface ModelManifest {
  schemaVersion: 1;
  /** Model name: the blob metadata `modelName` (PublishModel writes it), else derived from the path (`models/churn/1.4.2/` → `churn`). */
  name: string;
  /** Model version: metadata `modelVersion`, else the semantic version or folder name in the path, else the version id / snapshot, else the ETag. */
  version: string;
  /** `file`: one file, `files[0]`; `folder`: every file under the model's prefix, structure kept. */
  layout: 'file' | 'folder';
  source: {
    type: 'azureBlob' | 's3' | 'pipelineArtifact' | 'url';
    /** The blob / object / folder prefix / artifact URL, never with a credential (no SAS query). */
    uri: string;
    /** Azure container or S3 bucket. */
    container?: string;
    /** Single file: its ETag (no quotes). Folder: SHA-256 of the sorted "etag  name\n" lines of its blobs, so any change to any blob changes it. */
    etag: string;
    /** ISO 8601; for a folder, the newest of its blobs. */
    lastModified: string;
    /** Blob version id, S3 version id, or Azure snapshot time, when the model was pinned to one. */
    versionId?: string;
  };
  /**
   * Hex SHA-256 of the model. Single file: the file's SHA-256. Folder: SHA-256 of the UTF-8 text
   * made of one line per file, sorted by path (byte order), each `"<sha256 hex>  <path>\n"`
   * (two spaces, as `sha256sum` prints), so `sha256sum` output of the folder, sorted, hashes to it.
   */
  sha256: string;
  /** Total bytes of all files. */
  sizeBytes: number;
  /** Paths relative to the folder holding this manifest, `/`-separated, sorted. */
  files: ModelManifestFile[];
  /** ISO 8601 time the model was fetched (or found already present). */
  fetchedAt: string;
}

export interface ModelManifestFile {
  path: string;
  sizeBytes: number;
  sha256: string;
}

export function compareByteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The folder digest described on ModelManifest.sha256. */
export function folderSha256(files: ReadonlyArray<{ path: string; sha256: string }>): string {
  const lines = [...files].sort((a, b) => compareByteOrder(a.path, b.path)).map((f) => `${f.sha256}  ${f.path}\n`);
  return crypto.createHash('sha256').update(lines.join(''), 'utf8').digest('hex');
}

/** The model's sha256 as the manifest defines it, for either layout. */
export function modelSha256(layout: 'file' | 'folder', files: ReadonlyArray<{ path: string; sha256: string }>): string {
  return layout === 'file' ? files[0].sha256 : folderSha256(files);
}

/** The folder ETag described on ModelManifest.source.etag. */
export function folderEtag(objects: ReadonlyArray<{ name: string; etag: string }>): string {
  const lines = [...objects].sort((a, b) => compareByteOrder(a.name, b.name)).map((o) => `${o.etag}  ${o.name}\n`);
  return crypto.createHash('sha256').update(lines.join(''), 'utf8').digest('hex');
}

/** The manifest in `folder`, or undefined if there is none or it is not one of ours. */
export function readModelManifest(folder: string): ModelManifest | undefined {
  const file = path.join(folder, MODEL_MANIFEST_FILE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  const m = parsed as Partial<ModelManifest>;
  if (m?.schemaVersion !== 1 || !Array.isArray(m.files) || typeof m.sha256 !== 'string' || !m.source) return undefined;
  return m as ModelManifest;
}

export async function writeModelManifest(folder: string, manifest: ModelManifest): Promise<string> {
  const file = path.join(folder, MODEL_MANIFEST_FILE);
  await writeAtomically(file, async (temp) => fs.promises.writeFile(temp, JSON.stringify(manifest, null, 2) + '\n'));
  return file;
}
