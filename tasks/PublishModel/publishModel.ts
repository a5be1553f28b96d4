import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { TaskError } from '../common/errors';
import { compareByteOrder, modelSha256 } from '../common/model/modelManifest';
import { setOutput } from '../common/outputs';
import { ByteProgress } from '../common/progress';
import { mapLimited, type ObjectWriter } from '../common/storage/objectStore';
import { formatBytes, formatDuration, RunSummary } from '../common/summary';
import type { DestinationParameters, PublishModelParameters } from './parameters';

/** The writer for the destination; each SDK is loaded only when its destination is used. */
export async function writerFor(destination: DestinationParameters): Promise<ObjectWriter> {
  return destination.type === 'azureBlob'
    ? (await import('../common/storage/azureBlob')).AzureBlobStore.fromLocation(destination.location)
    : new (await import('../common/storage/s3')).S3Store(destination.location);
}

interface LocalFile {
  absolute: string;
  /** `/`-separated, relative to the model folder (the file name for a single file). */
  relative: string;
  sizeBytes: number;
  sha256: string;
  md5: string;
}

/** Every regular file of the model, in byte order of its path; links that leave the folder are refused. */
function modelFiles(modelPath: string): Array<Omit<LocalFile, 'sha256' | 'md5'>> {
  const stat = fs.statSync(modelPath);
  if (stat.isFile()) return [{ absolute: modelPath, relative: path.basename(modelPath), sizeBytes: stat.size }];
  const root = fs.realpathSync(modelPath);
  const out: Array<Omit<LocalFile, 'sha256' | 'md5'>> = [];
  for (const entry of fs.readdirSync(modelPath, { recursive: true, withFileTypes: true })) {
    const absolute = path.join(entry.parentPath, entry.name);
    const real = fs.realpathSync(absolute);
    if (real !== root && !real.startsWith(root + path.sep))
      throw new TaskError(`'${absolute}' links outside the model folder; copy the file in instead.`);
    const s = fs.statSync(absolute);
    if (!s.isFile()) continue;
    out.push({ absolute, relative: path.relative(modelPath, absolute).split(path.sep).join('/'), sizeBytes: s.size });
  }
  if (out.length === 0) throw new TaskError(`The model folder ${modelPath} has no files.`);
  return out.sort((a, b) => compareByteOrder(a.relative, b.relative));
}

async function hashFile(file: string): Promise<{ sha256: string; md5: string }> {
  const sha = crypto.createHash('sha256');
  const md5 = crypto.createHash('md5');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
    sha.update(chunk as Buffer);
    md5.update(chunk as Buffer);
  }
  return { sha256: sha.digest('hex'), md5: md5.digest('hex') };
}

export async function publishModel(params: PublishModelParameters, givenWriter?: ObjectWriter): Promise<string> {
  const writer = givenWriter ?? (await writerFor(params.destination));
  const layout = fs.statSync(params.modelPath).isFile() ? 'file' : 'folder';
  const prefix = `${params.pathPrefix}${params.modelName}/${params.modelVersion}/`;

  const existing = await writer.list(prefix);
  if (existing.length && !params.overwrite) {
    throw new TaskError(
      `${params.modelName} ${params.modelVersion} is already published at ${writer.uriOf(prefix)} (${existing
        .slice(0, 10)
        .map((o) => o.name.slice(prefix.length))
        .join(
          ', ',
        )}${existing.length > 10 ? ', ...' : ''}). Published versions are immutable: bump modelVersion, or set overwrite to true to replace it.`,
    );
  }

  console.log(`Hashing ${layout === 'file' ? params.modelPath : `the files of ${params.modelPath}`}`);
  const files: LocalFile[] = await mapLimited(modelFiles(params.modelPath), 2, async (f) => ({
    ...f,
    ...(await hashFile(f.absolute)),
  }));
  const sha256 = modelSha256(
    layout,
    files.map((f) => ({ path: f.relative, sha256: f.sha256 })),
  );
  const total = files.reduce((n, f) => n + f.sizeBytes, 0);
  console.log(
    `Publishing ${params.modelName} ${params.modelVersion}: ${files.length} file${files.length === 1 ? '' : 's'}, ${formatBytes(total)}, sha256 ${sha256} to ${writer.uriOf(prefix)}`,
  );

  const progress = new ByteProgress(`Uploading ${params.modelName} ${params.modelVersion}`, total);
  const uploaded = await mapLimited(files, Math.min(4, params.concurrency), async (f) => {
    let reported = 0;
    const result = await writer.upload(prefix + f.relative, f.absolute, {
      sizeBytes: f.sizeBytes,
      metadata: {
        ...params.metadata,
        sha256: f.sha256,
        modelName: params.modelName,
        modelVersion: params.modelVersion,
        modelSha256: sha256,
      },
      tags: params.tags,
      contentType: 'application/octet-stream',
      contentMd5: f.md5,
      overwrite: params.overwrite,
      blockSize: params.blockSize,
      concurrency: params.concurrency,
      onProgress: (loaded) => {
        progress.add(loaded - reported);
        reported = loaded;
      },
    });
    return { ...f, ...result };
  });
  const transfer = progress.finish();

  // Replacing a version: files the new one no longer has must not linger and join it.
  const stale = existing.filter((o) => !files.some((f) => prefix + f.relative === o.name));
  for (const o of stale) await writer.delete(o.name);

  const modelUri = layout === 'file' ? uploaded[0].uri : writer.uriOf(prefix);
  const fetchPath = layout === 'file' ? prefix + files[0].relative : prefix;
  setOutput('ModelUri', modelUri);
  setOutput('ModelPath', fetchPath);
  setOutput('ModelName', params.modelName);
  setOutput('ModelVersion', params.modelVersion);
  setOutput('ModelSha256', sha256);
  setOutput('ModelSizeBytes', total);

  const summary = new RunSummary(`Published ${params.modelName} ${params.modelVersion}`);
  summary.facts([
    ['Where', modelUri],
    ['FetchModel modelPath', `\`${fetchPath}\``],
    ['SHA-256', `\`${sha256}\`${layout === 'folder' ? ' (folder digest)' : ''}`],
    ['Size', `${formatBytes(total)} in ${files.length} file${files.length === 1 ? '' : 's'}`],
    [
      'Tags',
      Object.entries(params.tags)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ') || '(none)',
    ],
    ['Uploaded in', formatDuration(transfer.ms)],
    ...(existing.length
      ? ([
          [
            'Replaced',
            `${existing.length} existing file${existing.length === 1 ? '' : 's'} (overwrite)${stale.length ? `, ${stale.length} removed` : ''}`,
          ],
        ] as Array<[string, string]>)
      : []),
  ]);
  if (files.length > 1)
    summary.heading('Files').table(
      ['Path', 'Size', 'SHA-256'],
      files.slice(0, 100).map((f) => [f.relative, formatBytes(f.sizeBytes), `\`${f.sha256}\``]),
    );
  summary.upload('publish-model-summary.md');
  return `Published ${params.modelName} ${params.modelVersion} (${formatBytes(total)}, sha256 ${sha256}) to ${modelUri}.`;
}
