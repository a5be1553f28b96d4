import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

import { makeTempDir } from './paths';
import type { TestRegistry } from './registry';

const run = promisify(execFile);

/**
 * Base images for tests, built from local files with GNU tar and gzip (not with the code under
 * test), written as an OCI layout by hand and pushed by skopeo, the independent client. Also
 * the reading side: skopeo inspect, skopeo copy to a layout, and layer unpacking.
 */

export interface BaseImageSpec {
  repository: string;
  tag: string;
  /** Files of the single layer: path in the image → content. */
  files?: Record<string, string | Buffer>;
  /** Or a ready rootfs tar (e.g. a Node runtime). */
  rootfsTar?: string;
  /** 'v2s2' pushes a Docker v2 schema 2 manifest (a Docker manifest list for several platforms). */
  format?: 'oci' | 'v2s2';
  /** Several make a multi-platform index; default linux/amd64 only. */
  platforms?: Array<{ os: string; architecture: string; variant?: string }>;
  config?: {
    Env?: string[];
    Cmd?: string[];
    Entrypoint?: string[];
    WorkingDir?: string;
    Labels?: Record<string, string>;
  };
}

export interface PushedBaseImage {
  reference: string;
  /** Digest of what the tag points at (the index for several platforms). */
  digest: string;
  /** Per platform "os/arch" → diff ID of its one layer, so tests can tell which one was picked. */
  layerDiffIds: Record<string, string>;
}

function sha256(bytes: Buffer): string {
  return `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
}

export function credsOf(registry: TestRegistry): string[] {
  return registry.username ? ['--creds', `${registry.username}:${registry.password}`] : [];
}

export interface BaseLayout {
  /** The descriptor index.json names (the index for several platforms). */
  top: { mediaType: string; digest: string; size: number };
  layerDiffIds: Record<string, string>;
  /** Digest of each platform's image manifest, by "os/arch". */
  manifestDigests: Record<string, string>;
}

/**
 * Writes the base image into an OCI image layout folder by hand (GNU tar and gzip for the layer),
 * adding an index.json entry named `spec.tag`. `mediaTypes: 'docker'` writes Docker v2 schema 2
 * manifests (and a manifest list) into the layout, as some tools leave them.
 */
export async function writeBaseLayout(
  layout: string,
  spec: Omit<BaseImageSpec, 'repository' | 'format'> & { mediaTypes?: 'oci' | 'docker' },
): Promise<BaseLayout> {
  const work = makeTempDir('base-layout-');
  try {
    const docker = spec.mediaTypes === 'docker';
    const types = docker
      ? {
          manifest: 'application/vnd.docker.distribution.manifest.v2+json',
          config: 'application/vnd.docker.container.image.v1+json',
          layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
          index: 'application/vnd.docker.distribution.manifest.list.v2+json',
        }
      : {
          manifest: 'application/vnd.oci.image.manifest.v1+json',
          config: 'application/vnd.oci.image.config.v1+json',
          layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
          index: 'application/vnd.oci.image.index.v1+json',
        };
    fs.mkdirSync(path.join(layout, 'blobs', 'sha256'), { recursive: true });
    fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const writeBlob = (bytes: Buffer) => {
      const digest = sha256(bytes);
      fs.writeFileSync(path.join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
      return { digest, size: bytes.length };
    };
    const platforms = spec.platforms ?? [{ os: 'linux', architecture: 'amd64' }];
    const manifests: Array<{ mediaType: string; digest: string; size: number; platform: object }> = [];
    const layerDiffIds: Record<string, string> = {};
    const manifestDigests: Record<string, string> = {};
    for (const platform of platforms) {
      let tarFile = spec.rootfsTar;
      if (!tarFile) {
        const root = path.join(work, `rootfs-${platform.architecture}`);
        const files = {
          ...(spec.files ?? { 'etc/base-release': 'test base\n' }),
          'etc/platform': `${platform.os}/${platform.architecture}\n`,
        };
        for (const [name, content] of Object.entries(files)) {
          fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
          fs.writeFileSync(path.join(root, name), content);
        }
        tarFile = path.join(work, `rootfs-${platform.architecture}.tar`);
        await run('tar', [
          '--sort=name',
          '--mtime=@0',
          '--owner=0',
          '--group=0',
          '--numeric-owner',
          '-C',
          root,
          '-cf',
          tarFile,
          '.',
        ]);
      }
      const tar = fs.readFileSync(tarFile);
      const diffId = sha256(tar);
      layerDiffIds[`${platform.os}/${platform.architecture}`] = diffId;
      const gzFile = path.join(work, `${path.basename(tarFile)}.gz`);
      await run('sh', ['-c', `gzip -n -c "${tarFile}" > "${gzFile}"`]);
      const layer = writeBlob(fs.readFileSync(gzFile));
      const config = writeBlob(
        Buffer.from(
          JSON.stringify({
            created: '2026-01-01T00:00:00Z',
            architecture: platform.architecture,
            os: platform.os,
            ...(platform.variant ? { variant: platform.variant } : {}),
            config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], ...(spec.config ?? {}) },
            rootfs: { type: 'layers', diff_ids: [diffId] },
            history: [{ created: '2026-01-01T00:00:00Z', created_by: 'test/support/images.ts' }],
          }),
        ),
      );
      const manifest = writeBlob(
        Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: types.manifest,
            config: { mediaType: types.config, ...config },
            layers: [{ mediaType: types.layer, ...layer }],
          }),
        ),
      );
      manifestDigests[`${platform.os}/${platform.architecture}`] = manifest.digest;
      manifests.push({ mediaType: types.manifest, ...manifest, platform });
    }
    let top: { mediaType: string; digest: string; size: number };
    if (manifests.length === 1)
      top = { mediaType: manifests[0].mediaType, digest: manifests[0].digest, size: manifests[0].size };
    else
      top = {
        mediaType: types.index,
        ...writeBlob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: types.index, manifests }))),
      };
    const indexFile = path.join(layout, 'index.json');
    const index = fs.existsSync(indexFile)
      ? JSON.parse(fs.readFileSync(indexFile, 'utf8'))
      : { schemaVersion: 2, manifests: [] };
    index.manifests = index.manifests.filter(
      (m: any) => m.annotations?.['org.opencontainers.image.ref.name'] !== spec.tag,
    );
    index.manifests.push({ ...top, annotations: { 'org.opencontainers.image.ref.name': spec.tag } });
    fs.writeFileSync(indexFile, JSON.stringify(index));
    return { top, layerDiffIds, manifestDigests };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export async function makeBaseImage(registry: TestRegistry, spec: BaseImageSpec): Promise<PushedBaseImage> {
  const work = makeTempDir('base-image-');
  try {
    const layout = path.join(work, 'layout');
    const { layerDiffIds } = await writeBaseLayout(layout, spec);
    const reference = `${registry.host}/${spec.repository}:${spec.tag}`;
    const args = [
      'copy',
      '--quiet',
      '--dest-tls-verify=false',
      ...(registry.username ? ['--dest-creds', `${registry.username}:${registry.password}`] : []),
    ];
    if ((spec.platforms ?? []).length > 1) args.push('--all');
    if (spec.format === 'v2s2') args.push('--format', 'v2s2');
    args.push(`oci:${layout}:${spec.tag}`, `docker://${reference}`);
    await run('skopeo', args);
    const digest = await skopeoDigest(registry, reference);
    return { reference, digest, layerDiffIds };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function skopeoDigest(registry: TestRegistry, reference: string): Promise<string> {
  const { stdout } = await run(
    'skopeo',
    ['inspect', '--raw', '--tls-verify=false', ...credsOf(registry), `docker://${reference}`],
    { maxBuffer: 16 << 20 },
  );
  return sha256(Buffer.from(stdout));
}

export interface SkopeoInspect {
  Digest: string;
  Labels: Record<string, string> | null;
  Env: string[];
  Layers: string[];
  Architecture: string;
  Os: string;
}

export async function skopeoInspect(
  registry: TestRegistry,
  reference: string,
  what: 'image' | 'raw' | 'config' = 'image',
): Promise<any> {
  const flags = what === 'raw' ? ['--raw'] : what === 'config' ? ['--config'] : [];
  const { stdout } = await run(
    'skopeo',
    ['inspect', ...flags, '--tls-verify=false', ...credsOf(registry), `docker://${reference}`],
    { maxBuffer: 16 << 20 },
  );
  return JSON.parse(stdout);
}

/** `skopeo copy docker://… oci:<dir>:<tag>`: proves the image is complete and its blobs match their digests. */
export async function skopeoCopyToLayout(
  registry: TestRegistry,
  reference: string,
  dir: string,
  tag = 'copied',
): Promise<void> {
  await run(
    'skopeo',
    [
      'copy',
      '--quiet',
      '--src-tls-verify=false',
      ...(registry.username ? ['--src-creds', `${registry.username}:${registry.password}`] : []),
      `docker://${reference}`,
      `oci:${dir}:${tag}`,
    ],
    { maxBuffer: 16 << 20 },
  );
}

/** Reads an OCI layout's image (by ref name or the only one) and returns its manifest and config. */
export function readLayoutImage(
  dir: string,
  tag?: string,
): { manifest: any; config: any; blob(digest: string): string } {
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
  const entry = tag
    ? index.manifests.find((m: any) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)
    : index.manifests[0];
  if (!entry) throw new Error(`no image ${tag} in ${dir}`);
  const blob = (digest: string) => path.join(dir, 'blobs', ...digest.split(':'));
  const manifest = JSON.parse(fs.readFileSync(blob(entry.digest), 'utf8'));
  const config = JSON.parse(fs.readFileSync(blob(manifest.config.digest), 'utf8'));
  return { manifest, config, blob };
}

/** Unpacks each layer in order into `rootfs` with GNU tar (gzip or plain, by content). */
export async function unpackLayers(layerFiles: string[], rootfs: string): Promise<void> {
  fs.mkdirSync(rootfs, { recursive: true });
  for (const file of layerFiles) {
    const head = Buffer.alloc(2);
    const fd = fs.openSync(file, 'r');
    fs.readSync(fd, head, 0, 2, 0);
    fs.closeSync(fd);
    const gz = head[0] === 0x1f && head[1] === 0x8b;
    await run('tar', [gz ? '-xzf' : '-xf', file, '-C', rootfs, '--no-same-owner']);
  }
}

/** Lists a layer's entries with GNU tar's verbose form, for checking modes, owners and mtimes. */
export async function listLayer(file: string): Promise<string[]> {
  const { stdout } = await run('tar', ['--numeric-owner', '--full-time', '-tvf', file], { maxBuffer: 64 << 20 });
  return stdout.split('\n').filter(Boolean);
}
