import * as assert from 'node:assert/strict';

import {
  appendLayer,
  checkImage,
  type Image,
  mergeEnv,
  mutateConfig,
  parsePlatform,
  selectPlatform,
  serializeImage,
  setManifestAnnotations,
  sha256Digest,
  withOciMediaTypes,
} from '../../tasks/common/oci/image';
import { layerMediaTypeOf, MediaType } from '../../tasks/common/oci/mediaTypes';

function baseImage(mediaType: string = MediaType.ociManifest): Image {
  return {
    manifestMediaType: mediaType,
    manifest: {
      schemaVersion: 2,
      mediaType,
      config: { mediaType: MediaType.ociConfig, digest: 'sha256:' + '0'.repeat(64), size: 1 },
      layers: [{ mediaType: MediaType.ociLayerGzip, digest: 'sha256:' + '1'.repeat(64), size: 10 }],
    },
    config: {
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin', 'MODEL_NAME=old'], Cmd: ['node'], Labels: { keep: 'me' } },
      rootfs: { type: 'layers', diff_ids: ['sha256:' + '2'.repeat(64)] },
      history: [{ created_by: 'base' }],
    },
  };
}

describe('oci image mutation (pure)', () => {
  it('appends a layer to manifest.layers, rootfs.diff_ids and history together, leaving the input untouched', () => {
    const base = baseImage();
    const before = JSON.stringify(base);
    const next = appendLayer(base, {
      descriptor: { mediaType: MediaType.ociLayer, digest: 'sha256:' + '3'.repeat(64), size: 99 },
      diffId: 'sha256:' + '3'.repeat(64),
      history: { created: '1970-01-01T00:00:00Z', created_by: 'model' },
    });
    assert.equal(JSON.stringify(base), before);
    assert.deepEqual(
      next.manifest.layers.map((l) => l.size),
      [10, 99],
    );
    assert.deepEqual(next.config.rootfs.diff_ids, ['sha256:' + '2'.repeat(64), 'sha256:' + '3'.repeat(64)]);
    assert.deepEqual(
      next.config.history!.map((h) => h.created_by),
      ['base', 'model'],
    );
    checkImage(next);
  });

  it('merges env by name, sets labels, ports and command as a Dockerfile would', () => {
    assert.deepEqual(
      mergeEnv(
        ['A=1', 'B=2'],
        [
          ['B', '3'],
          ['C', 'x=y'],
        ],
      ),
      ['A=1', 'B=3', 'C=x=y'],
    );
    const next = mutateConfig(baseImage(), {
      env: [['MODEL_NAME', 'churn']],
      entrypoint: ['/start'],
      exposedPorts: ['3000', '53/udp'],
      labels: { a: 'b' },
      created: '1970-01-01T00:00:00Z',
      history: { created_by: 'cfg' },
    });
    const c = next.config.config!;
    assert.deepEqual(c.Env, ['PATH=/bin', 'MODEL_NAME=churn']);
    assert.deepEqual(c.Entrypoint, ['/start']);
    assert.equal(c.Cmd, null, 'ENTRYPOINT without CMD resets CMD');
    assert.deepEqual(c.ExposedPorts, { '3000/tcp': {}, '53/udp': {} });
    assert.deepEqual(c.Labels, { keep: 'me', a: 'b' });
    assert.equal(next.config.created, '1970-01-01T00:00:00Z');
    assert.deepEqual(next.config.history!.at(-1), { created_by: 'cfg', empty_layer: true });
    assert.deepEqual(mutateConfig(baseImage(), { entrypoint: ['/e'], cmd: ['--flag'] }).config.config!.Cmd, ['--flag']);
  });

  it('serialises deterministically and points the manifest at the config by digest', () => {
    const a = serializeImage(mutateConfig(baseImage(), { env: [['X', '1']] }));
    const b = serializeImage(mutateConfig(baseImage(), { env: [['X', '1']] }));
    assert.ok(a.manifestBytes.equals(b.manifestBytes));
    assert.equal(a.manifestDigest, sha256Digest(a.manifestBytes));
    assert.equal(a.manifest.config.digest, sha256Digest(a.configBytes));
    assert.equal(a.manifest.config.size, a.configBytes.length);
    assert.ok(
      a.manifestBytes
        .toString()
        .startsWith('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"'),
    );
    const c = serializeImage(mutateConfig(baseImage(), { env: [['X', '2']] }));
    assert.notEqual(c.manifestDigest, a.manifestDigest);
  });

  it('annotates OCI manifests only; Docker v2 keeps its own layer media types', () => {
    assert.deepEqual(setManifestAnnotations(baseImage(), { k: 'v' }).manifest.annotations, { k: 'v' });
    assert.equal(
      setManifestAnnotations(baseImage(MediaType.dockerManifest), { k: 'v' }).manifest.annotations,
      undefined,
    );
    assert.equal(layerMediaTypeOf('docker', 'none'), 'application/vnd.docker.image.rootfs.diff.tar');
    assert.equal(layerMediaTypeOf('docker', 'gzip'), 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    assert.equal(layerMediaTypeOf('oci', 'none'), 'application/vnd.oci.image.layer.v1.tar');
  });

  it('re-labels a Docker v2 image with OCI media types for a layout, keeping every blob', () => {
    const docker = baseImage(MediaType.dockerManifest);
    docker.manifest.config.mediaType = MediaType.dockerConfig;
    docker.manifest.layers = [
      { mediaType: MediaType.dockerLayerGzip, digest: 'sha256:' + '1'.repeat(64), size: 10 },
      { mediaType: MediaType.dockerLayer, digest: 'sha256:' + '4'.repeat(64), size: 5 },
    ];
    const oci = withOciMediaTypes(docker);
    assert.equal(oci.manifestMediaType, MediaType.ociManifest);
    assert.equal(oci.manifest.config.mediaType, MediaType.ociConfig);
    assert.deepEqual(
      oci.manifest.layers.map((l) => [l.mediaType, l.digest]),
      [
        [MediaType.ociLayerGzip, 'sha256:' + '1'.repeat(64)],
        [MediaType.ociLayer, 'sha256:' + '4'.repeat(64)],
      ],
    );
    assert.equal(serializeImage(oci).configDescriptor.digest, serializeImage(docker).configDescriptor.digest);
    assert.equal(docker.manifest.layers[0].mediaType, MediaType.dockerLayerGzip, 'the input is untouched');
  });

  it('refuses a base whose config and manifest disagree on the layer count', () => {
    const broken = baseImage();
    broken.config.rootfs.diff_ids = [];
    assert.throws(() => checkImage(broken), /0 layer diff IDs but the manifest has 1/);
  });

  it('picks the platform from an index, treating arm64 as arm64/v8, skipping attestations', () => {
    const d = (digest: string, platform?: object) =>
      ({ mediaType: MediaType.ociManifest, digest, size: 1, ...(platform ? { platform } : {}) }) as never;
    const index = {
      schemaVersion: 2 as const,
      manifests: [
        d('sha256:att', { os: 'unknown', architecture: 'unknown' }),
        d('sha256:amd', { os: 'linux', architecture: 'amd64' }),
        d('sha256:arm', { os: 'linux', architecture: 'arm64' }),
        d('sha256:none'),
      ],
    };
    assert.equal(selectPlatform(index, parsePlatform('linux/amd64')!)?.digest, 'sha256:amd');
    assert.equal(selectPlatform(index, parsePlatform('linux/arm64/v8')!)?.digest, 'sha256:arm');
    assert.equal(selectPlatform(index, parsePlatform('windows/amd64')!), undefined);
    assert.equal(parsePlatform('linux'), undefined);
  });
});
