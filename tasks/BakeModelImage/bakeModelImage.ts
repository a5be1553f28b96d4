import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { InputError, TaskError } from '../common/errors';
import { pushScope } from '../common/oci/auth';
import { pushBlob, type PushBlobResult } from '../common/oci/blobUpload';
import { excludeMatcher, parseExcludeLines } from '../common/oci/excludes';
import {
  appendLayer,
  type Descriptor,
  familyOfImage,
  formatPlatform,
  type Image,
  mutateConfig,
  serializeImage,
  setManifestAnnotations,
  withOciMediaTypes,
} from '../common/oci/image';
import { type BuiltLayer, fileRange, writeLayer } from '../common/oci/layer';
import { type LayoutBlob, writeOciLayout } from '../common/oci/layout';
import { LayoutSourceError } from '../common/oci/layoutSource';
import { layerMediaTypeOf, MediaType } from '../common/oci/mediaTypes';
import { formatReference, manifestReferenceOf } from '../common/oci/reference';
import { ImageNotFoundError, type ResolvedImage, resolveImage } from '../common/oci/resolve';
import { collectEntries, type TarOwnership } from '../common/oci/tar';
import { setOutput } from '../common/outputs';
import { ByteProgress } from '../common/progress';
import { formatBytes, formatDuration, RunSummary } from '../common/summary';
import { configChanges, isoTime, modelPaths, tagsToPut } from './imageChanges';
import { ModelFileHasher, type ModelInfo, readModelInfo } from './modelInfo';
import type { BakeModelImageParameters } from './parameters';
import { connectRegistries, mountableBaseRepository, type Registries } from './registries';

interface PlannedLayer {
  role: 'app' | 'model';
  built: BuiltLayer;
  descriptor: Descriptor;
  createdBy: string;
}

interface PushTally {
  uploaded: number;
  skipped: number;
  mounted: number;
  blobsUploaded: number;
  blobsSkipped: number;
}

async function buildLayers(
  params: BakeModelImageParameters,
  model: ModelInfo,
  workDir: string,
): Promise<Array<Omit<PlannedLayer, 'descriptor'>>> {
  const owner: TarOwnership = { uid: 0, gid: 0, mtime: params.epoch };
  const layers: Array<Omit<PlannedLayer, 'descriptor'>> = [];
  if (params.app) {
    const dockerignore = path.join(params.app.directory, '.dockerignore');
    const lines = [
      ...(fs.existsSync(dockerignore) ? parseExcludeLines(fs.readFileSync(dockerignore, 'utf8')) : []),
      ...params.app.exclude,
    ];
    const matcher = excludeMatcher(lines);
    const entries = collectEntries({
      source: params.app.directory,
      target: params.app.targetPath,
      exclude: (rel, isDir) => matcher.isExcluded(rel, isDir),
      walkExcludedDirectories: matcher.hasNegations,
    });
    const total = entries.reduce((n, e) => n + e.size, 0);
    const progress = new ByteProgress('Building the app layer', total);
    const built = await writeLayer({
      entries,
      owner,
      compression: params.compression,
      gzipLevel: params.compressionLevel,
      workDir,
      onBytes: (n) => progress.add(n),
    });
    progress.finish();
    console.log(
      `App layer: ${built.fileCount} files from ${params.app.directory} → ${params.app.targetPath} (${matcher.patterns.length} exclude patterns), ${formatBytes(built.size)}, ${built.digest}`,
    );
    layers.push({
      role: 'app',
      built,
      createdBy: `BakeModelImage: COPY ${path.basename(params.app.directory)} ${params.app.targetPath}`,
    });
  }
  const { layerTarget } = modelPaths(params, model);
  const entries = collectEntries({
    source: model.sourcePath,
    target: layerTarget,
    // FetchModel's manifest records when it fetched; baking it would change the digest every run.
    exclude: model.isFolder && model.fromManifest ? (rel) => rel === 'model-manifest.json' : undefined,
  });
  const progress = new ByteProgress('Building the model layer', model.sizeBytes);
  const hasher = model.sha256 === undefined ? new ModelFileHasher() : undefined;
  const built = await writeLayer({
    entries,
    owner,
    compression: params.compression,
    gzipLevel: params.compressionLevel,
    workDir,
    onBytes: (n) => progress.add(n),
    onFileBytes: hasher?.onFileBytes,
  });
  progress.finish();
  if (hasher) model.sha256 = hasher.modelSha256(model);
  console.log(
    `Model layer: ${model.name}${model.version ? ` ${model.version}` : ''} → ${layerTarget}, ${built.fileCount} files, ${formatBytes(built.uncompressedSize)} (${formatBytes(built.size)} stored), ${built.digest}`,
  );
  layers.push({
    role: 'model',
    built,
    createdBy: `BakeModelImage: COPY model ${model.name}${model.version ? `:${model.version}` : ''} ${layerTarget}`,
  });
  return layers;
}

async function resolveBase(params: BakeModelImageParameters, registries: Registries): Promise<ResolvedImage> {
  const base = params.baseImage;
  const reference = base.kind === 'registry' ? manifestReferenceOf(base.ref) : (base.ref.digest ?? base.ref.refName);
  const display = base.kind === 'registry' ? formatReference(base.ref) : params.baseImageText;
  return resolveImage(registries.base, reference, params.platform, display);
}

/** What `org.opencontainers.image.base.name` says: the registry reference, or the layout's ref name (the folder differs from agent to agent). */
function baseNameForLabels(params: BakeModelImageParameters, base: ResolvedImage): string | undefined {
  if (params.baseImage.kind === 'registry') return formatReference({ ...params.baseImage.ref, digest: undefined });
  return base.refName ? `oci:${base.refName}` : undefined;
}

/** A missing or damaged base (registry image, layout folder, blob) is the baseImage input's to fix. */
function asBaseImageError(err: unknown): unknown {
  if (err instanceof ImageNotFoundError)
    return new InputError(
      'baseImage',
      err.message,
      `Input 'baseImage': ${err.message} Check the base image reference.`,
    );
  if (err instanceof LayoutSourceError) return new InputError('baseImage', err.message);
  return err;
}

/** Runs `fn` over items, `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(workers);
}

async function pushImage(
  params: BakeModelImageParameters,
  registries: Registries,
  base: ResolvedImage,
  layers: PlannedLayer[],
  serialized: ReturnType<typeof serializeImage>,
  tags: string[],
  workDir: string,
): Promise<PushTally> {
  const target = registries.target!;
  const repository = params.target!.repository;
  const tally: PushTally = { uploaded: 0, skipped: 0, mounted: 0, blobsUploaded: 0, blobsSkipped: 0 };
  const count = (size: number, result: PushBlobResult) => {
    tally.uploaded += result.bytesSent;
    if (result.outcome === 'uploaded') tally.blobsUploaded++;
    else {
      tally.blobsSkipped++;
      tally.skipped += size;
      if (result.outcome === 'mounted') tally.mounted += size;
    }
  };
  const mountFrom = mountableBaseRepository(registries);
  const newBytes = layers.reduce((n, l) => n + l.built.size, 0);
  const progress = new ByteProgress(`Pushing to ${target.registry}/${repository}`, newBytes);
  const blobOptions = {
    chunkSize: params.uploadChunkSize,
    onBytes: (n: number) => progress.add(n),
    onRetract: (n: number) => progress.subtract(n),
  };

  // Base layers: already there, mounted from the base's repository, or copied across registries.
  await eachLimited(base.image.manifest.layers, 3, async (layer) => {
    if ((await target.blobSize(repository, layer.digest, [pushScope(repository)])) !== undefined) {
      count(layer.size, { outcome: 'exists', bytesSent: 0, restarts: 0, resumes: 0 });
      return;
    }
    if (mountFrom && mountFrom !== repository && (await target.mountBlob(repository, layer.digest, mountFrom))) {
      count(layer.size, { outcome: 'mounted', bytesSent: 0, restarts: 0, resumes: 0 });
      return;
    }
    const file = path.join(workDir, `base-${layer.digest.replace(':', '-')}`);
    await registries.base.copyBlob(layer.digest, file);
    try {
      count(
        layer.size,
        await pushBlob(
          target,
          repository,
          { digest: layer.digest, size: layer.size, open: fileRange(file) },
          blobOptions,
        ),
      );
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
  for (const layer of layers) {
    count(
      layer.built.size,
      await pushBlob(
        target,
        repository,
        { digest: layer.built.digest, size: layer.built.size, open: (start, end) => layer.built.open(start, end) },
        blobOptions,
      ),
    );
  }
  count(
    serialized.configBytes.length,
    await pushBlob(target, repository, {
      digest: serialized.configDescriptor.digest,
      size: serialized.configBytes.length,
      bytes: serialized.configBytes,
    }),
  );
  progress.finish();
  for (const tag of tags) {
    const digest = await target.putManifest(repository, tag, serialized.manifestBytes, serialized.manifestMediaType);
    if (digest !== serialized.manifestDigest)
      throw new TaskError(
        `Registry ${target.registry} stored ${repository}:${tag} as ${digest}, not ${serialized.manifestDigest}.`,
      );
    console.log(`Tagged ${target.registry}/${repository}:${tag}`);
  }
  return tally;
}

async function writeLayout(
  params: BakeModelImageParameters,
  registries: Registries,
  base: ResolvedImage,
  layers: PlannedLayer[],
  serialized: ReturnType<typeof serializeImage>,
  tags: string[],
): Promise<void> {
  if (serialized.manifestMediaType !== MediaType.ociManifest) {
    throw new Error('an OCI layout holds OCI manifests only');
  }
  const blobs: LayoutBlob[] = [
    ...base.image.manifest.layers.map((l) => ({
      digest: l.digest,
      size: l.size,
      download: (file: string) => registries.base.copyBlob(l.digest, file).then(() => undefined),
    })),
    ...layers.map((l) => ({ digest: l.built.digest, size: l.built.size, open: () => l.built.open(0, l.built.size) })),
    { digest: serialized.configDescriptor.digest, size: serialized.configBytes.length, bytes: serialized.configBytes },
  ];
  await writeOciLayout(params.outputLayout!, {
    manifestBytes: serialized.manifestBytes,
    manifestDigest: serialized.manifestDigest,
    manifestMediaType: serialized.manifestMediaType,
    blobs,
    refNames: tags,
  });
  console.log(`Wrote OCI image layout ${params.outputLayout} (tags ${tags.join(', ')})`);
}

export async function bakeModelImage(params: BakeModelImageParameters): Promise<string> {
  const started = Date.now();
  const workDir = path.join(params.workDir, `bake-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  fs.mkdirSync(workDir, { recursive: true });
  try {
    const model = await readModelInfo(params.model.path, { name: params.model.name, version: params.model.version });
    console.log(
      `Model ${model.name}${model.version ? ` version ${model.version}` : ''} from ${model.sourcePath}${model.fromManifest ? ` (model-manifest.json: sha256 ${model.sha256})` : ' (no model-manifest.json: name from the path, sha256 hashed while the layer is built)'}`,
    );
    const registries = connectRegistries(params);
    const base = await resolveBase(params, registries);
    const family = familyOfImage(base.image);
    const baseDisplay =
      params.baseImage.kind === 'registry' ? formatReference(params.baseImage.ref) : params.baseImageText;
    console.log(
      `Base ${baseDisplay}${base.refName && params.baseImage.kind === 'layout' && !params.baseImage.ref.refName ? ` (ref name ${base.refName})` : ''}: ${formatPlatform(params.platform)} manifest ${base.manifestDigest} (${family === 'docker' ? 'Docker v2' : 'OCI'}), ${base.image.manifest.layers.length} layers`,
    );

    const built = await buildLayers(params, model, workDir);
    const layers: PlannedLayer[] = built.map((l) => ({
      ...l,
      descriptor: {
        mediaType: layerMediaTypeOf(family, l.built.compression),
        digest: l.built.digest,
        size: l.built.size,
      },
    }));
    let image: Image = base.image;
    for (const layer of layers)
      image = appendLayer(image, {
        descriptor: layer.descriptor,
        diffId: layer.built.diffId,
        history: { created: isoTime(params.epoch), created_by: layer.createdBy, comment: 'BakeModelImage' },
      });
    if (model.sha256 === undefined) throw new Error('the model sha256 was not computed');
    const changes = configChanges(
      params,
      { ...model, sha256: model.sha256 },
      { digest: base.manifestDigest, name: baseNameForLabels(params, base) },
    );
    image = mutateConfig(image, changes);
    image = setManifestAnnotations(image, changes.labels ?? {});
    const serialized = serializeImage(image);
    const tags = tagsToPut(params, model);

    let tally: PushTally | undefined;
    if (registries.target) tally = await pushImage(params, registries, base, layers, serialized, tags, workDir);
    if (params.outputLayout) {
      // skopeo and podman read only OCI manifests from a layout: a Docker v2 image goes in with OCI media types (same blobs, other manifest digest).
      const forLayout =
        family === 'oci'
          ? serialized
          : serializeImage(setManifestAnnotations(withOciMediaTypes(image), changes.labels ?? {}));
      if (forLayout !== serialized)
        console.log(
          `The OCI layout holds the image with OCI media types: manifest ${forLayout.manifestDigest} (pushed as Docker v2: ${serialized.manifestDigest}).`,
        );
      await writeLayout(params, registries, base, layers, forLayout, tags);
    }

    const digest = serialized.manifestDigest;
    // Without a push, the reference is the layout's, as skopeo and podman take it.
    const ref =
      params.target && registries.target
        ? `${params.target.registry}/${params.target.repository}@${digest}`
        : `oci:${params.outputLayout}:${tags[0]}`;
    setOutput('ImageDigest', digest);
    setOutput('ImageRef', ref);
    setOutput('ImageTags', tags.join(','));
    setOutput('BytesUploaded', tally?.uploaded ?? 0);
    setOutput('BytesSkipped', tally?.skipped ?? 0);
    if (params.outputLayout) setOutput('ImageLayout', params.outputLayout);

    const summary = new RunSummary('Bake model image');
    summary.facts([
      ['Image', params.target ? `\`${ref}\`` : '(not pushed)'],
      ['Tags', tags.map((t) => `\`${t}\``).join(', ')],
      [
        'Base',
        `\`${baseDisplay}\` → \`${base.manifestDigest}\` (${formatPlatform(params.platform)}, ${family === 'docker' ? 'Docker v2' : 'OCI'})`,
      ],
      [
        'Model',
        `${model.name}${model.version ? ` ${model.version}` : ''}, sha256 \`${model.sha256 ?? ''}\`${model.sourceUri ? `, from ${model.sourceUri}` : ''}`,
      ],
      ...(tally
        ? ([
            ['Uploaded', `${formatBytes(tally.uploaded)} (${tally.blobsUploaded} blobs)`],
            [
              'Skipped (already in the registry or mounted)',
              `${formatBytes(tally.skipped)} (${tally.blobsSkipped} blobs)`,
            ],
          ] as Array<[string, string]>)
        : []),
      ...(params.outputLayout ? ([['OCI layout', `\`${params.outputLayout}\``]] as Array<[string, string]>) : []),
      ['Duration', formatDuration(Date.now() - started)],
    ]);
    summary.table(
      ['Layer', 'Digest', 'Size', 'Media type'],
      layers.map((l) => [l.role, `\`${l.built.digest}\``, formatBytes(l.built.size), l.descriptor.mediaType]),
    );
    summary.upload('bake-model-image.md');

    const line = tally
      ? `Pushed ${ref} (tags ${tags.join(', ')}): uploaded ${formatBytes(tally.uploaded)}, skipped ${formatBytes(tally.skipped)} already in the registry.`
      : `Wrote ${ref} to ${params.outputLayout}.`;
    console.log(line);
    return line;
  } catch (err) {
    throw asBaseImageError(err);
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}
