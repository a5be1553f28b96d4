import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';

import { parseChallenges, pushScope, RegistryAuthError } from '../../tasks/common/oci/auth';
import { pushBlob } from '../../tasks/common/oci/blobUpload';
import { fileRange } from '../../tasks/common/oci/layer';
import { RegistryClient } from '../../tasks/common/oci/registry';
import { type FaultProxy, startFaultProxy } from '../support/faultProxy';
import { makeTempDir } from '../support/paths';
import { startAcrFront, startRegistry, type TestRegistry } from '../support/registry';

const noSleep = { sleep: async () => {}, baseDelayMs: 1 };

function blobOf(bytes: Buffer) {
  return { digest: `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length };
}

async function fetchBlob(registry: TestRegistry, repository: string, digest: string): Promise<Buffer> {
  const res = await fetch(`${registry.url}/v2/${repository}/blobs/${digest}`, {
    headers: { authorization: `Basic ${Buffer.from(`${registry.username}:${registry.password}`).toString('base64')}` },
  });
  assert.equal(res.status, 200, `GET blob ${digest}`);
  return Buffer.from(await res.arrayBuffer());
}

describe('oci registry client: auth challenges', () => {
  it('parses basic and bearer challenges, quoted commas included', () => {
    assert.deepEqual(parseChallenges('Basic realm="test-registry"'), [
      { scheme: 'basic', params: { realm: 'test-registry' } },
    ]);
    assert.deepEqual(
      parseChallenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/node:pull,push"',
      ),
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.docker.io/token',
            service: 'registry.docker.io',
            scope: 'repository:library/node:pull,push',
          },
        },
      ],
    );
    assert.deepEqual(
      parseChallenges('Bearer realm="a\\"b", error=invalid_token, Basic realm=x').map((c) => [c.scheme, c.params]),
      [
        ['bearer', { realm: 'a"b', error: 'invalid_token' }],
        ['basic', { realm: 'x' }],
      ],
    );
    assert.deepEqual(parseChallenges(undefined), []);
  });
});

describe('oci registry client against a real registry', function () {
  this.timeout(60_000);
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let dir: string;
  let client: RegistryClient;

  before(async () => {
    registry = await startRegistry();
    proxy = await startFaultProxy({ target: registry.url });
    dir = makeTempDir('oci-registry-');
    client = new RegistryClient(`127.0.0.1:${proxy.port}`, {
      credential: {
        kind: 'basic',
        username: registry.username,
        password: registry.password,
        source: "service connection 'unit'",
      },
      retry: noSleep,
    });
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    proxy.setFaults([]);
    proxy.resetStats();
  });

  it('uploads in chunks, then skips a blob the repository has, then mounts it into another repository', async () => {
    const bytes = crypto.randomBytes(300_000);
    const file = path.join(dir, 'a.bin');
    fs.writeFileSync(file, bytes);
    const blob = { ...blobOf(bytes), open: fileRange(file) };
    const first = await pushBlob(client, 'unit/a', blob, { chunkSize: 64 * 1024 });
    assert.equal(first.outcome, 'uploaded');
    assert.equal(first.bytesSent, bytes.length);
    assert.equal(proxy.stats.requests.filter((r) => r.method === 'PATCH').length, 5);
    assert.ok((await fetchBlob(registry, 'unit/a', blob.digest)).equals(bytes));
    proxy.resetStats();
    assert.equal((await pushBlob(client, 'unit/a', blob)).outcome, 'exists');
    assert.equal(proxy.stats.bytesToServer, 0);
    const mounted = await pushBlob(client, 'unit/b', blob, { mountFrom: ['unit/a'] });
    assert.equal(mounted.outcome, 'mounted');
    assert.equal(proxy.stats.bytesToServer, 0, 'a mount sends no bytes');
    assert.ok((await fetchBlob(registry, 'unit/b', blob.digest)).equals(bytes));
  });

  it('recovers from a connection reset mid-chunk and from 503s on PATCH and PUT; the stored blob matches', async () => {
    const bytes = crypto.randomBytes(1_000_000);
    const blob = { ...blobOf(bytes), open: (s: number, e: number) => Readable.from([bytes.subarray(s, e)]) };
    proxy.setFaults([
      { match: /^PATCH /, every: 2, times: 1, resetAfterBytes: 50_000, direction: 'request' },
      { match: /^PATCH /, status: 503, retryAfter: '0', times: 1 },
      { match: /^PUT .*digest=/, status: 503, times: 1 },
    ]);
    const result = await pushBlob(client, 'unit/faults', blob, { chunkSize: 200_000, sleep: async () => {} });
    assert.equal(result.outcome, 'uploaded');
    assert.equal(proxy.stats.faultsInjected, 3);
    assert.ok(result.restarts + result.resumes >= 1, JSON.stringify(result));
    assert.ok((await fetchBlob(registry, 'unit/faults', blob.digest)).equals(bytes));
  });

  it('gives up after its bounded number of failures with the registry answer in the message', async () => {
    const bytes = crypto.randomBytes(10_000);
    proxy.setFaults([{ match: /^PATCH /, status: 503 }]);
    await assert.rejects(
      pushBlob(
        client,
        'unit/down',
        { ...blobOf(bytes), open: () => Readable.from([bytes]) },
        { maxFailures: 3, sleep: async () => {} },
      ),
      /HTTP 503/,
    );
  });

  it('refuses a blob whose bytes do not match its digest', async () => {
    const bytes = crypto.randomBytes(5000);
    const wrong = {
      digest: blobOf(Buffer.from('other')).digest,
      size: bytes.length,
      open: (s: number, e: number) => Readable.from([bytes.subarray(s, e)]),
    };
    await assert.rejects(pushBlob(client, 'unit/bad', wrong, { sleep: async () => {} }), /do not match their digest/);
  });

  it('names the credentials a registry refused', async () => {
    const wrong = new RegistryClient(registry.host, {
      credential: {
        kind: 'basic',
        username: registry.username,
        password: 'wrong-password',
        source: "service connection 'prod-acr'",
      },
      retry: noSleep,
    });
    await assert.rejects(
      wrong.blobSize('unit/a', blobOf(Buffer.from('x')).digest),
      (err: unknown) =>
        err instanceof RegistryAuthError &&
        /refused the credentials of service connection 'prod-acr'/.test(err.message) &&
        !err.message.includes('wrong-password'),
    );
    const anonymous = new RegistryClient(registry.host, { credential: { kind: 'anonymous' }, retry: noSleep });
    await assert.rejects(anonymous.getManifest('unit/a', 'latest'), /needs a user name and password/);
  });
});

describe('oci registry client: ACR token exchange (stand-in token service in front of a real registry)', function () {
  this.timeout(60_000);
  let registry: TestRegistry;

  before(async () => {
    registry = await startRegistry();
  });
  after(async () => registry?.stop());

  it('exchanges the Entra token once, gets scoped tokens, and pushes a blob and a manifest through them', async () => {
    const entraToken = `entra-${crypto.randomBytes(8).toString('hex')}`;
    const front = await startAcrFront({ registry, entraToken, tenantId: 'tenant-1' });
    try {
      let entraCalls = 0;
      const client = new RegistryClient(front.host, {
        credential: {
          kind: 'entra',
          source: "Azure service connection 'arm'",
          tenantId: 'tenant-1',
          getEntraToken: async () => (entraCalls++, entraToken),
        },
        retry: noSleep,
      });
      const bytes = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
      const blob = blobOf(bytes);
      assert.equal((await pushBlob(client, 'ml/scoring', { ...blob, bytes })).outcome, 'uploaded');
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...blob },
          layers: [],
        }),
      );
      await client.putManifest('ml/scoring', 'v1', manifest, 'application/vnd.oci.image.manifest.v1+json');
      const fetched = await client.getManifest('ml/scoring', 'v1', [pushScope('ml/scoring')]);
      assert.ok(fetched!.bytes.equals(manifest));
      assert.equal(entraCalls, 1);
      assert.deepEqual(
        front.events.filter((e) => e.kind === 'exchange').map((e) => e.detail),
        ['tenant=tenant-1'],
      );
      assert.deepEqual(
        [...new Set(front.events.filter((e) => e.kind === 'token').map((e) => e.detail))],
        ['repository:ml/scoring:pull,push'],
      );
      assert.equal(
        front.events.filter((e) => e.kind === 'token').length,
        1,
        'the access token is cached per scope set',
      );
      assert.equal(front.events.filter((e) => e.kind === 'refused').length, 0);
    } finally {
      await front.stop();
    }
  });

  it('pulls a public image with an anonymous bearer token, and pushes with a token got by basic credentials', async () => {
    const front = await startAcrFront({ registry, entraToken: 'unused', anonymousPull: true });
    try {
      const pusher = new RegistryClient(front.host, {
        credential: {
          kind: 'basic',
          username: registry.username,
          password: registry.password,
          source: "service connection 'hub'",
        },
        retry: noSleep,
      });
      const bytes = Buffer.from('public config');
      await pushBlob(pusher, 'library/public', { ...blobOf(bytes), bytes });
      const anonymous = new RegistryClient(front.host, { credential: { kind: 'anonymous' }, retry: noSleep });
      assert.ok((await anonymous.getBlobBytes('library/public', blobOf(bytes).digest)).equals(bytes));
      assert.deepEqual(
        front.events.filter((e) => e.kind === 'token').map((e) => e.detail),
        ['basic repository:library/public:pull,push', 'anonymous repository:library/public:pull'],
      );
      await assert.rejects(
        pushBlob(anonymous, 'library/public', { ...blobOf(Buffer.from('x')), bytes: Buffer.from('x') }),
        /refused no credentials \(anonymous\)/,
      );
      const wrong = new RegistryClient(front.host, {
        credential: {
          kind: 'basic',
          username: registry.username,
          password: 'nope-wrong',
          source: "service connection 'hub'",
        },
        retry: noSleep,
      });
      await assert.rejects(
        wrong.getManifest('library/public', 'latest'),
        /refused the credentials of service connection 'hub' \(HTTP 401 from its token service/,
      );
    } finally {
      await front.stop();
    }
  });

  it('says clearly when the registry refuses the Entra token', async () => {
    const front = await startAcrFront({ registry, entraToken: 'the-right-token' });
    try {
      const client = new RegistryClient(front.host, {
        credential: {
          kind: 'entra',
          source: "Azure service connection 'arm'",
          getEntraToken: async () => 'some-other-token',
        },
        retry: noSleep,
      });
      await assert.rejects(
        client.getManifest('ml/scoring', 'v1'),
        /refused the Entra ID token of Azure service connection 'arm' at \/oauth2\/exchange \(HTTP 401.*AcrPush/,
      );
    } finally {
      await front.stop();
    }
  });
});
