import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { LayoutImageSource, LayoutSourceError } from '../../tasks/common/oci/layoutSource';
import { ImageNotFoundError, resolveImage } from '../../tasks/common/oci/resolve';
import { writeBaseLayout } from '../support/images';
import { makeTempDir } from '../support/paths';

describe('oci layout source', function () {
  this.timeout(30_000);
  let work: string;
  before(() => (work = makeTempDir('layout-source-')));
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('reads index.json itself as the multi-platform index when its entries carry platforms and no names', async () => {
    const dir = path.join(work, 'flat');
    const written = await writeBaseLayout(dir, {
      tag: 'multi',
      platforms: [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64' },
      ],
    });
    // As some tools write it: the platform manifests straight in index.json, unnamed.
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'blobs', 'sha256', written.top.digest.slice(7)), 'utf8'));
    fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: index.manifests }));
    const source = LayoutImageSource.open(dir);
    const arm = await resolveImage(source, undefined, { os: 'linux', architecture: 'arm64' }, `oci:${dir}`);
    assert.equal(arm.manifestDigest, written.manifestDigests['linux/arm64']);
    assert.equal(arm.image.config.architecture, 'arm64');
    assert.equal(arm.refName, undefined);
    await assert.rejects(
      resolveImage(source, 'multi', { os: 'linux', architecture: 'arm64' }, `oci:${dir}:multi`),
      (err: unknown) =>
        err instanceof ImageNotFoundError &&
        /has no image named 'multi'; it has no ref names \(2 images\)/.test(err.message),
    );
  });

  it('says when a layout holds no images, and refuses a digest-named path that is not a digest', async () => {
    const dir = path.join(work, 'empty');
    fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    fs.writeFileSync(
      path.join(dir, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:../../etc/passwd', size: 1 },
        ],
      }),
    );
    const source = LayoutImageSource.open(dir);
    await assert.rejects(
      source.getManifest(undefined),
      (err: unknown) =>
        err instanceof LayoutSourceError &&
        /names a blob 'sha256:\.\.\/\.\.\/etc\/passwd', which is not a digest/.test(err.message),
    );
    fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [] }));
    assert.match(await LayoutImageSource.open(dir).describeMissing(undefined), /holds no images/);
    fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '2.0.0' }));
    assert.throws(() => LayoutImageSource.open(dir), /imageLayoutVersion "2\.0\.0"; only 1\.x layouts are read/);
  });
});
