import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { TaskError } from '../common/errors';
import {
  compareByteOrder,
  folderSha256,
  MODEL_MANIFEST_FILE,
  type ModelManifest,
  readModelManifest,
} from '../common/model/modelManifest';

/** What the image says about its model: from FetchModel's model-manifest.json when there is one. */
export interface ModelInfo {
  name: string;
  version?: string;
  /**
   * Hex SHA-256 as model-manifest.json defines it: the file's, or the folder digest. Without a
   * manifest it is left for `modelSha256FromLayer`, hashed in the same read that builds the layer.
   */
  sha256?: string;
  sizeBytes: number;
  sourceUri?: string;
  sourceType?: string;
  /** What goes into the layer: the file, or the folder (without model-manifest.json). */
  sourcePath: string;
  isFolder: boolean;
  /** For a folder holding a single-file model: the file's path inside it, which MODEL_PATH points at. */
  servedFile?: string;
  fromManifest: boolean;
}

/** A model whose sha256 is known (after the layer is built, at the latest). */
export type HashedModel = ModelInfo & { sha256: string };

export interface ModelOverrides {
  name?: string;
  version?: string;
}

function checkManifestMatches(folder: string, manifest: ModelManifest): void {
  for (const file of manifest.files) {
    const full = path.join(folder, ...file.path.split('/'));
    let size: number;
    try {
      size = fs.statSync(full).size;
    } catch {
      throw new TaskError(
        `${path.join(folder, MODEL_MANIFEST_FILE)} lists ${file.path}, which is not in ${folder}. Run FetchModel again, or remove the stale manifest.`,
      );
    }
    if (size !== file.sizeBytes) {
      throw new TaskError(
        `${file.path} in ${folder} has ${size} bytes, but ${MODEL_MANIFEST_FILE} says ${file.sizeBytes}. The model changed after FetchModel verified it; run FetchModel again.`,
      );
    }
  }
}

/** Every file under a folder, '/'-separated, byte order; model-manifest.json left out. */
function listFiles(folder: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync(path.join(folder, prefix)).sort(compareByteOrder)) {
    const rel = prefix ? `${prefix}/${name}` : name;
    const st = fs.statSync(path.join(folder, rel));
    if (st.isDirectory()) out.push(...listFiles(folder, rel));
    else if (rel !== MODEL_MANIFEST_FILE) out.push(rel);
  }
  return out;
}

function nameFromPath(p: string): string {
  const base = path.basename(p).replace(/\.[A-Za-z0-9]+$/, '');
  return base || 'model';
}

export async function readModelInfo(modelPath: string, overrides: ModelOverrides = {}): Promise<ModelInfo> {
  const stat = fs.statSync(modelPath);
  if (stat.isFile()) {
    const manifest = readModelManifest(path.dirname(modelPath));
    const described =
      manifest?.layout === 'file' && manifest.files[0]?.path === path.basename(modelPath) ? manifest : undefined;
    if (described) checkManifestMatches(path.dirname(modelPath), described);
    return {
      name: overrides.name ?? described?.name ?? nameFromPath(modelPath),
      version: overrides.version ?? described?.version,
      sha256: described?.sha256,
      sizeBytes: stat.size,
      sourceUri: described?.source.uri,
      sourceType: described?.source.type,
      sourcePath: modelPath,
      isFolder: false,
      fromManifest: described !== undefined,
    };
  }
  const manifest = readModelManifest(modelPath);
  if (manifest) {
    checkManifestMatches(modelPath, manifest);
    return {
      name: overrides.name ?? manifest.name,
      version: overrides.version ?? manifest.version,
      sha256: manifest.sha256,
      sizeBytes: manifest.sizeBytes,
      sourceUri: manifest.source.uri,
      sourceType: manifest.source.type,
      sourcePath: modelPath,
      isFolder: true,
      servedFile: manifest.layout === 'file' ? manifest.files[0]?.path : undefined,
      fromManifest: true,
    };
  }
  if (listFiles(modelPath).length === 0) throw new TaskError(`The model folder ${modelPath} has no files.`);
  return {
    name: overrides.name ?? nameFromPath(modelPath),
    version: overrides.version,
    sizeBytes: listFiles(modelPath).reduce(
      (n, rel) => n + fs.statSync(path.join(modelPath, ...rel.split('/'))).size,
      0,
    ),
    sourcePath: modelPath,
    isFolder: true,
    fromManifest: false,
  };
}

/** Collects each model file's SHA-256 while the layer is built (see writeLayer's onFileBytes). */
export class ModelFileHasher {
  private readonly hashes = new Map<string, crypto.Hash>();

  readonly onFileBytes = (file: string, chunk: Buffer): void => {
    let hash = this.hashes.get(file);
    if (!hash) this.hashes.set(file, (hash = crypto.createHash('sha256')));
    hash.update(chunk);
  };

  /** The model's sha256 as model-manifest.json defines it, from the hashes collected. */
  modelSha256(model: ModelInfo): string {
    const hexOf = (file: string) => this.hashes.get(file)?.copy().digest('hex') ?? EMPTY_SHA256;
    if (!model.isFolder) return hexOf(model.sourcePath);
    return folderSha256(
      listFiles(model.sourcePath).map((rel) => ({
        path: rel,
        sha256: hexOf(path.join(model.sourcePath, ...rel.split('/'))),
      })),
    );
  }
}

const EMPTY_SHA256 = crypto.createHash('sha256').digest('hex');
