import * as fs from 'node:fs';
import * as path from 'node:path';
import { TaskError } from '../common/errors';
import { sha256File } from '../common/fsutil';
import { compareByteOrder, folderSha256, MODEL_MANIFEST_FILE, readModelManifest, type ModelManifest } from '../FetchModel/modelManifest';

/** What the image says about its model: from FetchModel's model-manifest.json when there is one. */
export interface ModelInfo {
  name: string;
  version?: string;
  /** Hex SHA-256 as model-manifest.json defines it: the file's, or the folder digest. */
  sha256: string;
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
      throw new TaskError(`${path.join(folder, MODEL_MANIFEST_FILE)} lists ${file.path}, which is not in ${folder}. Run FetchModel again, or remove the stale manifest.`);
    }
    if (size !== file.sizeBytes) {
      throw new TaskError(`${file.path} in ${folder} has ${size} bytes, but ${MODEL_MANIFEST_FILE} says ${file.sizeBytes}. The model changed after FetchModel verified it; run FetchModel again.`);
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
    const described = manifest && manifest.layout === 'file' && manifest.files[0]?.path === path.basename(modelPath) ? manifest : undefined;
    if (described) checkManifestMatches(path.dirname(modelPath), described);
    return {
      name: overrides.name ?? described?.name ?? nameFromPath(modelPath),
      version: overrides.version ?? described?.version,
      sha256: described?.sha256 ?? (await sha256File(modelPath)),
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
  const files = listFiles(modelPath);
  if (files.length === 0) throw new TaskError(`The model folder ${modelPath} has no files.`);
  const hashed = [];
  let sizeBytes = 0;
  for (const rel of files) {
    const full = path.join(modelPath, ...rel.split('/'));
    sizeBytes += fs.statSync(full).size;
    hashed.push({ path: rel, sha256: await sha256File(full) });
  }
  return {
    name: overrides.name ?? nameFromPath(modelPath),
    version: overrides.version,
    sha256: folderSha256(hashed),
    sizeBytes,
    sourcePath: modelPath,
    isFolder: true,
    fromManifest: false,
  };
}
