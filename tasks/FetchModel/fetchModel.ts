import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import * as tl from 'azure-pipelines-task-lib/task';

import { TaskError } from '../common/errors';
import { sha256File } from '../common/fsutil';
import {
  MODEL_MANIFEST_FILE,
  type ModelManifest,
  type ModelManifestFile,
  modelSha256,
  readModelManifest,
  writeModelManifest,
} from '../common/model/modelManifest';
import { setOutput } from '../common/outputs';
import { ByteProgress } from '../common/progress';
import { Limiter, mapLimited, type ObjectStore } from '../common/storage/objectStore';
import { downloadObjectToFile } from '../common/storage/rangedDownload';
import { formatBytes, formatDuration, RunSummary } from '../common/summary';
import type { FetchModelParameters, SourceParameters } from './parameters';
import { type ResolvedModel, resolveModel } from './selectModel';
import { UrlStore } from './urlStore';

/**
 * The store for the source. Each SDK is loaded only when its source is used: the Azure, AWS and
 * Azure DevOps clients together are most of the bundle, and loading all three would slow every
 * task start.
 */
export async function storeFor(source: SourceParameters): Promise<ObjectStore> {
  switch (source.type) {
    case 'azureBlob':
      return (await import('../common/storage/azureBlob')).AzureBlobStore.fromLocation(source.location);
    case 's3':
      return new (await import('../common/storage/s3')).S3Store(source.location);
    case 'url':
      return new UrlStore(source.url);
    case 'pipelineArtifact':
      return new (await import('./artifactStore')).PipelineArtifactStore(source.artifact);
  }
}

export interface FetchResult {
  manifest: ModelManifest;
  modelPath: string;
  manifestPath: string;
  cacheHit: boolean;
  bytesDownloaded: number;
  retries: number;
  verifiedAgainst: string[];
  durationMs: number;
  resolved: ResolvedModel;
}

/** What the task does: resolve, use the cache or download and verify, install, report. */
export async function fetchModel(params: FetchModelParameters, givenStore?: ObjectStore): Promise<string> {
  const store = givenStore ?? (await storeFor(params.source));
  const result = await fetchModelToTarget(params, store);
  publishOutputs(result);
  writeSummary(params, store, result);
  const m = result.manifest;
  return result.cacheHit
    ? `Model ${m.name} ${m.version} was already in ${params.targetPath}; nothing downloaded.`
    : `Fetched model ${m.name} ${m.version} (${formatBytes(m.sizeBytes)}, sha256 ${m.sha256}).`;
}

export async function fetchModelToTarget(params: FetchModelParameters, store: ObjectStore): Promise<FetchResult> {
  const started = Date.now();
  const target = path.resolve(params.targetPath);
  console.log(
    `Looking for the model in ${store.locationUri} (${params.selection.selector}${params.selection.modelPath ? ` ${params.selection.modelPath}` : ''})`,
  );
  const resolved = await resolveModel(store, params.selection);
  for (const c of resolved.considered) tl.debug(`candidate ${c.key}: ${c.note}`);
  console.log(
    `Selected ${resolved.name} ${resolved.version}: ${resolved.uri} (${resolved.layout}, ${resolved.files.length} file${resolved.files.length === 1 ? '' : 's'}, ${formatBytes(resolved.sizeBytes)}) because: ${resolved.reason}`,
  );

  const cached = await cachedManifest(target, resolved, params);
  if (cached) {
    console.log(
      `The target already holds this model (ETag ${cached.source.etag}, sha256 ${cached.sha256}): skipping the download.`,
    );
    const manifest: ModelManifest = { ...cached, fetchedAt: new Date().toISOString() };
    await writeModelManifest(target, manifest);
    return {
      manifest,
      modelPath: modelPathOf(target, manifest),
      manifestPath: path.join(target, MODEL_MANIFEST_FILE),
      cacheHit: true,
      bytesDownloaded: 0,
      retries: 0,
      verifiedAgainst: ['cache'],
      durationMs: Date.now() - started,
      resolved,
    };
  }

  fs.mkdirSync(target, { recursive: true });
  const staging = path.join(target, `.fetch-${process.pid}-${crypto.randomBytes(4).toString('hex')}.partial`);
  fs.mkdirSync(staging);
  try {
    const progress = new ByteProgress(`Downloading ${resolved.name} ${resolved.version}`, resolved.sizeBytes);
    const limiter = new Limiter(params.concurrency);
    const single = resolved.files.length === 1;
    // A server without ranges gets one request per file; ranges otherwise.
    const rangesWork = store.kind !== 'pipelineArtifact' && (!(store instanceof UrlStore) || store.supportsRanges);
    const verifiedAgainst = new Set<string>();
    let retries = 0;
    let bytesDownloaded = 0;
    const files: ModelManifestFile[] = await mapLimited(
      resolved.files,
      single ? 1 : params.concurrency,
      async (file) => {
        const dest = path.join(staging, ...file.relativePath.split('/'));
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        const obj = file.object;
        const useMd5 = !obj.sha256 && !!obj.contentMd5;
        const got = await downloadObjectToFile(store, obj, dest, {
          blockSize: rangesWork ? params.blockSize : Math.max(1, obj.sizeBytes),
          limiter,
          progress,
          md5: useMd5,
        });
        retries += got.retries;
        bytesDownloaded += got.bytesTransferred;
        if (obj.sha256) {
          if (got.sha256 !== obj.sha256)
            throw new TaskError(
              `Integrity check failed for '${obj.name}': its sha256 metadata says ${obj.sha256}, the bytes received hash to ${got.sha256}. Nothing was written to ${target}. The blob may be corrupt or was replaced without updating its metadata; republish it.`,
            );
          verifiedAgainst.add(store.kind === 's3' && !obj.metadata?.sha256 ? 'S3 SHA-256 checksum' : 'sha256 metadata');
        } else if (obj.contentMd5) {
          if (got.md5 !== obj.contentMd5)
            throw new TaskError(
              `Integrity check failed for '${obj.name}': its ${store.kind === 's3' ? 'ETag (MD5)' : 'Content-MD5'} is ${obj.contentMd5}, the bytes received hash to ${got.md5}. Nothing was written to ${target}.`,
            );
          verifiedAgainst.add(store.kind === 's3' ? 'ETag (MD5)' : 'Content-MD5');
        } else if (!params.expectedSha256) {
          tl.warning(
            `'${obj.name}' carries no checksum (no sha256 metadata, no Content-MD5), so only its size could be checked. Publish it with PublishModel, or pin it with expectedSha256: ${got.sha256}`,
          );
        }
        return { path: file.relativePath, sizeBytes: got.sizeBytes, sha256: got.sha256 };
      },
    );
    const transfer = progress.finish();
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const sha256 = modelSha256(resolved.layout, files);
    if (params.expectedSha256) {
      if (sha256 !== params.expectedSha256) {
        throw new TaskError(
          `Integrity check failed: expectedSha256 is ${params.expectedSha256} but the ${resolved.layout === 'folder' ? 'folder digest of the model' : 'model'} is ${sha256}. Nothing was written to ${target}. Check that modelPath and the selector pick the model you pinned.`,
        );
      }
      verifiedAgainst.add('expectedSha256');
    }
    const manifest = buildManifest(params, store, resolved, files, sha256);
    installStaged(target, staging, manifest);
    await writeModelManifest(target, manifest);
    console.log(
      `Downloaded ${formatBytes(bytesDownloaded)} in ${formatDuration(transfer.ms)} (${formatBytes((bytesDownloaded / Math.max(1, transfer.ms)) * 1000)}/s)${retries ? `, ${retries} interrupted range${retries === 1 ? '' : 's'} resumed` : ''}; verified against ${[...verifiedAgainst].join(', ') || 'size only'}.`,
    );
    return {
      manifest,
      modelPath: modelPathOf(target, manifest),
      manifestPath: path.join(target, MODEL_MANIFEST_FILE),
      cacheHit: false,
      bytesDownloaded,
      retries,
      verifiedAgainst: [...verifiedAgainst],
      durationMs: Date.now() - started,
      resolved,
    };
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

function buildManifest(
  params: FetchModelParameters,
  store: ObjectStore,
  resolved: ResolvedModel,
  files: ModelManifestFile[],
  sha256: string,
): ModelManifest {
  const container =
    params.source.type === 'azureBlob'
      ? params.source.location.container
      : params.source.type === 's3'
        ? params.source.location.bucket
        : undefined;
  return {
    schemaVersion: 1,
    name: resolved.name,
    version: resolved.version,
    layout: resolved.layout,
    source: {
      type: store.kind,
      uri: resolved.uri,
      ...(container ? { container } : {}),
      etag: resolved.etag,
      lastModified: resolved.lastModified.toISOString(),
      ...(resolved.versionId ? { versionId: resolved.versionId } : {}),
    },
    sha256,
    sizeBytes: files.reduce((n, f) => n + f.sizeBytes, 0),
    files,
    fetchedAt: new Date().toISOString(),
  };
}

function modelPathOf(target: string, manifest: ModelManifest): string {
  return manifest.layout === 'file' ? path.join(target, ...manifest.files[0].path.split('/')) : target;
}

/**
 * The previous manifest, if the target already holds exactly this model: same source, same
 * ETag (and version id), every file present with its size, and (verifyCache) its sha256.
 */
async function cachedManifest(
  target: string,
  resolved: ResolvedModel,
  params: FetchModelParameters,
): Promise<ModelManifest | undefined> {
  const previous = readModelManifest(target);
  if (!previous) return undefined;
  const sameSource =
    previous.source.uri === resolved.uri &&
    previous.source.etag === resolved.etag &&
    (previous.source.versionId ?? '') === (resolved.versionId ?? '');
  if (!sameSource) {
    tl.debug(
      `cache: target holds ${previous.source.uri} etag ${previous.source.etag}, not ${resolved.uri} etag ${resolved.etag}`,
    );
    return undefined;
  }
  if (params.expectedSha256 && previous.sha256 !== params.expectedSha256) return undefined;
  const wanted = new Map(resolved.files.map((f) => [f.relativePath, f.object]));
  if (previous.files.length !== wanted.size) return undefined;
  for (const f of previous.files) {
    const obj = wanted.get(f.path);
    if (obj?.sizeBytes !== f.sizeBytes) return undefined;
    if (obj.sha256 && obj.sha256 !== f.sha256) return undefined;
    const local = path.join(target, ...f.path.split('/'));
    let stat: fs.Stats;
    try {
      stat = fs.statSync(local);
    } catch {
      console.log(`Cache: ${f.path} is missing from the target; downloading again.`);
      return undefined;
    }
    if (!stat.isFile() || stat.size !== f.sizeBytes) {
      console.log(`Cache: ${f.path} in the target has the wrong size; downloading again.`);
      return undefined;
    }
    if (params.verifyCache && (await sha256File(local)) !== f.sha256) {
      console.log(`Cache: ${f.path} in the target was modified since it was fetched; downloading again.`);
      return undefined;
    }
  }
  return previous;
}

/** Moves verified files from staging into the target, first removing the files of the model it replaces. */
function installStaged(target: string, staging: string, manifest: ModelManifest): void {
  const previous = readModelManifest(target);
  if (previous) {
    for (const f of previous.files) {
      const old = path.join(target, ...f.path.split('/'));
      // Only files the previous fetch wrote; anything else in the folder is the user's.
      if (old.startsWith(target + path.sep)) fs.rmSync(old, { force: true });
    }
  }
  for (const f of manifest.files) {
    const from = path.join(staging, ...f.path.split('/'));
    const to = path.join(target, ...f.path.split('/'));
    if (path.relative(target, to).startsWith('..') || f.path === MODEL_MANIFEST_FILE)
      throw new TaskError(`Refusing to write '${f.path}' over the model manifest or outside ${target}.`);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.renameSync(from, to);
  }
}

function publishOutputs(result: FetchResult): void {
  const m = result.manifest;
  setOutput('ModelPath', result.modelPath);
  setOutput('ModelName', m.name);
  setOutput('ModelVersion', m.version);
  setOutput('ModelSha256', m.sha256);
  setOutput('ModelUri', m.source.uri);
  setOutput('ModelSizeBytes', m.sizeBytes);
  setOutput('ModelManifestPath', result.manifestPath);
}

function writeSummary(params: FetchModelParameters, store: ObjectStore, result: FetchResult): void {
  const m = result.manifest;
  const summary = new RunSummary(`Model ${m.name} ${m.version}`);
  summary.facts([
    ['Source', `${store.kind}: ${m.source.uri}`],
    ['Selected by', `${params.selection.selector}: ${result.resolved.reason}`],
    ['SHA-256', `\`${m.sha256}\`${m.layout === 'folder' ? ' (folder digest)' : ''}`],
    ['Size', `${formatBytes(m.sizeBytes)} in ${m.files.length} file${m.files.length === 1 ? '' : 's'}`],
    ['Verified against', result.verifiedAgainst.join(', ') || 'size only (the store has no checksum)'],
    [
      'Downloaded',
      result.cacheHit
        ? 'nothing: the target already held this model (cache hit)'
        : `${formatBytes(result.bytesDownloaded)} in ${formatDuration(result.durationMs)}${result.retries ? `, ${result.retries} ranges resumed` : ''}`,
    ],
    ['On the agent', result.modelPath],
  ]);
  if (m.files.length > 1) {
    summary.heading('Files').table(
      ['Path', 'Size', 'SHA-256'],
      m.files.slice(0, 100).map((f) => [f.path, formatBytes(f.sizeBytes), `\`${f.sha256}\``]),
    );
  }
  if (result.resolved.considered.length > 1) {
    summary.heading('Candidates').table(
      ['Candidate', 'Outcome'],
      result.resolved.considered.slice(0, 30).map((c) => [c.key, c.note]),
    );
  }
  summary.upload('fetch-model-summary.md');
}
