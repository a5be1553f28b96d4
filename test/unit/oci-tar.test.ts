import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';

import { writeLayer } from '../../tasks/common/oci/layer';
import { collectEntries, entryHeader, TarArchive, type TarEntry } from '../../tasks/common/oci/tar';
import { makeTempDir } from '../support/paths';

const run = promisify(execFile);

async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

/** Python's tarfile as a second, independent reader (PAX headers included). */
async function pythonList(file: string): Promise<
  Array<{
    name: string;
    size: number;
    mode: number;
    uid: number;
    gid: number;
    mtime: number;
    type: string;
    linkname: string;
  }>
> {
  const script = `import tarfile, json, sys
t = tarfile.open(sys.argv[1])
print(json.dumps([{"name": m.name, "size": m.size, "mode": m.mode, "uid": m.uid, "gid": m.gid, "mtime": m.mtime, "type": m.type.decode(), "linkname": m.linkname} for m in t.getmembers()]))`;
  const { stdout } = await run('python3', ['-c', script, file], { maxBuffer: 16 << 20 });
  return JSON.parse(stdout);
}

describe('oci reproducible tar layers', () => {
  let dir: string;
  let src: string;
  const longName = `${'deep-folder-name/'.repeat(12)}${'f'.repeat(120)}.bin`;

  before(() => {
    dir = makeTempDir('tar-test-');
    src = path.join(dir, 'src');
    fs.mkdirSync(path.join(src, 'b', 'c'), { recursive: true });
    fs.writeFileSync(path.join(src, 'b', 'c', 'z.txt'), 'zz');
    fs.writeFileSync(path.join(src, 'a.txt'), 'hello\n');
    fs.writeFileSync(path.join(src, 'run.sh'), '#!/bin/sh\n', { mode: 0o700 });
    fs.writeFileSync(path.join(src, 'empty'), '');
    fs.writeFileSync(path.join(src, 'Ünïcode-名前.txt'), 'u');
    fs.symlinkSync('a.txt', path.join(src, 'link'));
    fs.mkdirSync(path.join(src, path.dirname(longName)), { recursive: true });
    fs.writeFileSync(path.join(src, longName), crypto.randomBytes(1000));
    fs.chmodSync(path.join(src, 'a.txt'), 0o600);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes sorted entries with parents first, fixed owner and mtime, normalised modes; GNU tar and Python agree', async () => {
    const entries = collectEntries({ source: src, target: '/opt/model' });
    const layer = await writeLayer({
      entries,
      owner: { uid: 0, gid: 0, mtime: 1_700_000_000 },
      compression: 'gzip',
      gzipLevel: 6,
      workDir: dir,
    });
    const listing = await pythonList(layer.file!);
    const names = listing.map((m) => m.name);
    assert.deepEqual(names.slice(0, 5), ['opt', 'opt/model', 'opt/model/a.txt', 'opt/model/b', 'opt/model/b/c']);
    assert.ok(names.includes(`opt/model/${longName}`), 'a name past ustar limits survives through PAX');
    assert.ok(names.includes('opt/model/Ünïcode-名前.txt'), 'non-ASCII names survive through PAX');
    for (const m of listing) {
      assert.equal(m.uid, 0);
      assert.equal(m.gid, 0);
      assert.equal(m.mtime, 1_700_000_000);
    }
    const byName = Object.fromEntries(listing.map((m) => [m.name, m]));
    assert.equal(byName['opt/model/a.txt'].mode, 0o644, '0600 becomes 0644');
    assert.equal(byName['opt/model/run.sh'].mode, 0o755, 'executable becomes 0755');
    assert.equal(byName['opt/model/b'].mode, 0o755);
    assert.equal(byName['opt/model/link'].linkname, 'a.txt');
    assert.equal(byName['opt/model/empty'].size, 0);
    // Digests are of what they say: the gzip file and the tar inside it.
    const gz = fs.readFileSync(layer.file!);
    assert.equal(layer.digest, `sha256:${crypto.createHash('sha256').update(gz).digest('hex')}`);
    const tar = zlib.gunzipSync(gz);
    assert.equal(layer.diffId, `sha256:${crypto.createHash('sha256').update(tar).digest('hex')}`);
    assert.equal(layer.uncompressedSize, tar.length);
    // GNU tar extracts it byte for byte.
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    await run('tar', ['-xzf', layer.file!, '-C', out]);
    assert.ok(fs.readFileSync(path.join(out, 'opt/model', longName)).equals(fs.readFileSync(path.join(src, longName))));
  });

  it('gives the same bytes for the same files whatever their timestamps, and a different digest for one changed byte', async () => {
    const build = async () =>
      writeLayer({
        entries: collectEntries({ source: src, target: '/m' }),
        owner: { uid: 0, gid: 0, mtime: 0 },
        compression: 'none',
        workDir: dir,
      });
    const first = await build();
    fs.utimesSync(path.join(src, 'a.txt'), new Date(), new Date(2001, 1, 1));
    const second = await build();
    assert.equal(second.digest, first.digest);
    assert.equal(first.file, undefined, 'an uncompressed layer needs no temp file');
    fs.writeFileSync(path.join(src, 'b', 'c', 'z.txt'), 'zy');
    const third = await build();
    assert.notEqual(third.digest, first.digest);
    fs.writeFileSync(path.join(src, 'b', 'c', 'z.txt'), 'zz');
  });

  it('reads any byte range of an uncompressed layer identical to the whole', async () => {
    const archive = new TarArchive(collectEntries({ source: src, target: '/m' }), { uid: 0, gid: 0, mtime: 0 });
    const whole = await readAll(archive.read());
    assert.equal(whole.length, archive.size);
    assert.equal(whole.length % 512, 0);
    for (const [start, end] of [
      [0, 1],
      [511, 513],
      [700, 2900],
      [1000, archive.size],
      [archive.size - 1, archive.size],
    ]) {
      assert.ok(
        (await readAll(archive.read(start, end, 100))).equals(whole.subarray(start, end)),
        `range ${start}-${end}`,
      );
    }
  });

  it('fails clearly when a file changes size while it is read', async () => {
    const file = path.join(dir, 'growing.bin');
    fs.writeFileSync(file, Buffer.alloc(10));
    const archive = new TarArchive(collectEntries({ source: file, target: '/m/growing.bin' }), {
      uid: 0,
      gid: 0,
      mtime: 0,
    });
    fs.writeFileSync(file, Buffer.alloc(20));
    await assert.rejects(readAll(archive.read()), /changed size while the image was baked/);
  });

  it('puts sizes past ustar limits and long link targets in PAX records', () => {
    const big: TarEntry = { kind: 'file', name: 'models/huge.bin', size: 10 * 1024 ** 3, mode: 0o644 };
    const header = entryHeader(big, { uid: 0, gid: 0, mtime: 0 });
    assert.equal(header.length, 512 * 3, 'PAX header, PAX body, ustar header');
    assert.match(header.subarray(512, 1024).toString('utf8'), /^\d+ size=10737418240\n/);
    const linkHeader = entryHeader(
      { kind: 'symlink', name: 'l', size: 0, mode: 0o777, linkTarget: 'x'.repeat(150) },
      { uid: 0, gid: 0, mtime: 0 },
    );
    assert.match(linkHeader.subarray(512, 1024).toString('utf8'), /^\d+ linkpath=x{150}\n/);
    // The record length counts its own digits.
    const rec = /^(\d+) /.exec(linkHeader.subarray(512, 1024).toString('utf8'))!;
    assert.equal(Number(rec[1]), Buffer.byteLength(`${rec[1]} linkpath=${'x'.repeat(150)}\n`));
  });
});
