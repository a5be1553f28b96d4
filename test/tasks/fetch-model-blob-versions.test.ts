import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

import { AZURITE_ACCOUNT, AZURITE_KEY } from '../support/azurite';
import { bundleTasks } from '../support/bundle';
import { type FaultProxy, startFaultProxy } from '../support/faultProxy';
import { makeTempDir } from '../support/paths';
import { describeRun, runTask } from '../support/taskRunner';

/**
 * FetchModel's versionId selector against a local stand-in for the Blob service calls it makes,
 * because Azurite 3.35 has no blob versioning: it ignores `include=versions` and answers
 * `?versionid=` with the current blob. (Snapshots, which Azurite does keep, are tested against
 * Azurite in fetch-model.test.ts.) The stand-in speaks, path-style like Azurite:
 *   HEAD /{account}/{container}/{blob}[?versionid=|?snapshot=]          Get Blob Properties
 *   GET  /{account}/{container}/{blob}[?versionid=|?snapshot=] x-ms-range Get Blob (206)
 *   GET  /{account}/{container}?restype=container&comp=list&prefix=&include=...  List Blobs
 * with the service's headers (x-ms-version echoed, x-ms-version-id, x-ms-is-current-version,
 * x-ms-meta-*, Content-MD5, ETag, x-ms-error-code) and XML shapes (EnumerationResults with
 * VersionId / IsCurrentVersion / Snapshot per Blob; Error Code/Message). It requires a SharedKey
 * Authorization header for the account but does not recompute the signature (Azurite does).
 */

const sha256 = (data: Buffer | string) => crypto.createHash('sha256').update(data).digest('hex');
const bytes = (label: string, size: number) =>
  crypto.createHash('shake256', { outputLength: size }).update(label).digest();

interface BlobVersion {
  versionId?: string;
  snapshot?: string;
  data: Buffer;
  metadata: Record<string, string>;
  contentMd5?: boolean;
  lastModified: Date;
  /** The blob as it is now (a versionId that is also the current version, or the base of snapshots). */
  current?: boolean;
}

interface BlobStandIn {
  endpoint: string;
  requests: string[];
  stop(): Promise<void>;
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const etagOf = (v: BlobVersion) => `"0x8DD${sha256(v.data).slice(0, 12).toUpperCase()}"`;

async function startBlobVersionStandIn(container: string, blobs: Record<string, BlobVersion[]>): Promise<BlobStandIn> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    const msVersion = String(req.headers['x-ms-version'] ?? '');
    const common = {
      'x-ms-request-id': crypto.randomUUID(),
      'x-ms-version': msVersion,
      Server: 'Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0',
      Date: new Date().toUTCString(),
    };
    const fail = (status: number, code: string, message: string) => {
      res.writeHead(status, { ...common, 'x-ms-error-code': code, 'Content-Type': 'application/xml' });
      res.end(
        req.method === 'HEAD'
          ? undefined
          : `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${xml(message)}\nRequestId:${common['x-ms-request-id']}\nTime:${new Date().toISOString()}</Message></Error>`,
      );
    };
    if (!msVersion)
      return fail(400, 'MissingRequiredHeader', "An HTTP header that's mandatory for this request is not specified.");
    if (!String(req.headers.authorization ?? '').startsWith(`SharedKey ${AZURITE_ACCOUNT}:`))
      return fail(403, 'AuthenticationFailed', 'Server failed to authenticate the request.');
    const [account, containerName, ...rest] = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (account !== AZURITE_ACCOUNT)
      return fail(400, 'InvalidUri', 'The requested URI does not represent any resource on the server.');
    if (containerName !== container) return fail(404, 'ContainerNotFound', 'The specified container does not exist.');

    if (rest.length === 0) {
      if (
        url.searchParams.get('restype') !== 'container' ||
        url.searchParams.get('comp') !== 'list' ||
        req.method !== 'GET'
      )
        return fail(
          400,
          'UnsupportedQueryParameter',
          'One of the query parameters specified in the request URI is not supported.',
        );
      const include = new Set((url.searchParams.get('include') ?? '').split(',').filter(Boolean));
      const prefix = url.searchParams.get('prefix') ?? '';
      const entries = Object.keys(blobs)
        .sort()
        .filter((n) => n.startsWith(prefix))
        .flatMap((name) =>
          blobs[name]
            .filter((v) => (v.snapshot ? include.has('snapshots') : v.current || include.has('versions')))
            .map(
              (v) =>
                `<Blob><Name>${xml(name)}</Name>${v.snapshot ? `<Snapshot>${v.snapshot}</Snapshot>` : ''}${v.versionId && include.has('versions') ? `<VersionId>${v.versionId}</VersionId>${v.current ? '<IsCurrentVersion>true</IsCurrentVersion>' : ''}` : ''}<Properties><Creation-Time>${v.lastModified.toUTCString()}</Creation-Time><Last-Modified>${v.lastModified.toUTCString()}</Last-Modified><Etag>${etagOf(v)}</Etag><Content-Length>${v.data.length}</Content-Length><Content-Type>application/octet-stream</Content-Type><Content-Encoding /><Content-Language /><Content-CRC64 /><Content-MD5>${v.contentMd5 ? crypto.createHash('md5').update(v.data).digest('base64') : ''}</Content-MD5><Cache-Control /><Content-Disposition /><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred>${v.current ? '<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>' : ''}<ServerEncrypted>true</ServerEncrypted></Properties>${
                  include.has('metadata')
                    ? `<Metadata>${Object.entries(v.metadata)
                        .map(([k, val]) => `<${k}>${xml(val)}</${k}>`)
                        .join('')}</Metadata>`
                    : ''
                }<OrMetadata /></Blob>`,
            ),
        );
      res.writeHead(200, { ...common, 'Content-Type': 'application/xml' });
      res.end(
        `<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://${req.headers.host}/${AZURITE_ACCOUNT}/" ContainerName="${container}"><Prefix>${xml(prefix)}</Prefix><Blobs>${entries.join('')}</Blobs><NextMarker /></EnumerationResults>`,
      );
      return;
    }

    const name = rest.join('/');
    const versionId = url.searchParams.get('versionid');
    const snapshot = url.searchParams.get('snapshot');
    const v = (blobs[name] ?? []).find((x) =>
      versionId ? x.versionId === versionId : snapshot ? x.snapshot === snapshot : x.current && !x.snapshot,
    );
    if (!v) return fail(404, 'BlobNotFound', 'The specified blob does not exist.');
    const headers: Record<string, string | number> = {
      ...common,
      'Last-Modified': v.lastModified.toUTCString(),
      ETag: etagOf(v),
      'Content-Type': 'application/octet-stream',
      'Accept-Ranges': 'bytes',
      'x-ms-blob-type': 'BlockBlob',
      'x-ms-creation-time': v.lastModified.toUTCString(),
      'x-ms-server-encrypted': 'true',
      'x-ms-access-tier': 'Hot',
      'x-ms-access-tier-inferred': 'true',
      ...(v.versionId ? { 'x-ms-version-id': v.versionId } : {}),
      ...(v.current
        ? { 'x-ms-is-current-version': 'true', 'x-ms-lease-status': 'unlocked', 'x-ms-lease-state': 'available' }
        : {}),
      ...Object.fromEntries(Object.entries(v.metadata).map(([k, val]) => [`x-ms-meta-${k}`, val])),
    };
    const md5 = v.contentMd5 ? crypto.createHash('md5').update(v.data).digest('base64') : undefined;
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...headers, 'Content-Length': v.data.length, ...(md5 ? { 'Content-MD5': md5 } : {}) });
      res.end();
      return;
    }
    if (req.method !== 'GET')
      return fail(405, 'UnsupportedHttpVerb', "The resource doesn't support the specified HTTP verb.");
    const range = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers['x-ms-range'] ?? req.headers.range ?? ''));
    if (!range) {
      res.writeHead(200, { ...headers, 'Content-Length': v.data.length, ...(md5 ? { 'Content-MD5': md5 } : {}) });
      res.end(v.data);
      return;
    }
    const start = Number(range[1]);
    const end = Math.min(v.data.length - 1, range[2] ? Number(range[2]) : v.data.length - 1);
    if (start >= v.data.length)
      return fail(416, 'InvalidRange', 'The range specified is invalid for the current size of the resource.');
    res.writeHead(206, {
      ...headers,
      'Content-Length': end - start + 1,
      'Content-Range': `bytes ${start}-${end}/${v.data.length}`,
      ...(md5 ? { 'x-ms-blob-content-md5': md5 } : {}),
    });
    res.end(v.data.subarray(start, end + 1));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/${AZURITE_ACCOUNT}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('FetchModel versionId selector (Blob versioning stand-in; Azurite has none)', function () {
  this.timeout(90_000);
  let blob: BlobStandIn;
  let proxy: FaultProxy;
  const work = makeTempDir('fetch-model-versions-');
  const v1 = bytes('churn v1', 700_000);
  const v2 = bytes('churn v2', 650_001);
  const v3 = bytes('churn v3', 640_000);
  const retired = bytes('retired v1', 300_000);
  const ids = {
    v1: '2026-11-20T10:00:00.1111111Z',
    v2: '2026-11-21T10:00:00.2222222Z',
    v3: '2026-11-22T10:00:00.3333333Z',
    retired: '2026-10-01T08:00:00.4444444Z',
    snap: '2026-11-21T12:00:00.5555555Z',
  };

  before(async () => {
    bundleTasks('FetchModel');
    blob = await startBlobVersionStandIn('models', {
      'churn/model.onnx': [
        {
          versionId: ids.v1,
          data: v1,
          metadata: { sha256: sha256(v1), modelVersion: '1.0.0' },
          lastModified: new Date(Date.parse(ids.v1)),
        },
        { versionId: ids.v2, data: v2, metadata: {}, contentMd5: true, lastModified: new Date(Date.parse(ids.v2)) },
        { snapshot: ids.snap, data: v2, metadata: {}, contentMd5: true, lastModified: new Date(Date.parse(ids.v2)) },
        {
          versionId: ids.v3,
          data: v3,
          metadata: { sha256: sha256(v3) },
          lastModified: new Date(Date.parse(ids.v3)),
          current: true,
        },
      ],
      // Deleted since: only its version is left.
      'retired/model.onnx': [
        {
          versionId: ids.retired,
          data: retired,
          metadata: { sha256: sha256(retired) },
          lastModified: new Date(Date.parse(ids.retired)),
        },
      ],
    });
    proxy = await startFaultProxy({ target: blob.endpoint.replace(/\/[^/]+$/, '') });
  });
  after(async () => {
    await proxy?.stop();
    await blob?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const connectionString = (endpoint: string) =>
    `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${endpoint};`;
  const fetch = (inputs: Record<string, string>, endpoint = blob.endpoint) =>
    runTask('FetchModel', {
      inputs: {
        source: 'azureBlob',
        authenticationType: 'connectionString',
        connectionString: connectionString(endpoint),
        container: 'models',
        blobEndpoint: endpoint,
        versionSelector: 'versionId',
        blockSize: '256KiB',
        ...inputs,
      },
      secretVariables: { StorageConnectionString: connectionString(endpoint) },
    });

  it("fetches an older version, not the current blob, in ranges, verified against that version's sha256 metadata", async () => {
    blob.requests.length = 0;
    const target = path.join(work, 'v1');
    const run = await fetch({ modelPath: 'churn/model.onnx', versionId: ids.v1, targetPath: target });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.ok(fs.readFileSync(path.join(target, 'model.onnx')).equals(v1));
    assert.equal(run.outputs.ModelSha256, sha256(v1));
    assert.equal(run.outputs.ModelVersion, '1.0.0');
    assert.match(run.summaries.join('\n'), /sha256 metadata/);
    const manifest = JSON.parse(fs.readFileSync(path.join(target, 'model-manifest.json'), 'utf8'));
    assert.equal(manifest.source.versionId, ids.v1);
    assert.equal(
      manifest.source.uri,
      `${blob.endpoint}/models/churn/model.onnx?versionid=${encodeURIComponent(ids.v1)}`,
    );
    const gets = blob.requests.filter((r) => r.startsWith('GET /devstoreaccount1/models/churn/model.onnx?versionid='));
    assert.equal(gets.length, 3, blob.requests.join('\n'));
    assert.ok(
      blob.requests.every((r) => !/^(GET|HEAD) \/devstoreaccount1\/models\/churn\/model\.onnx$/.test(r)),
      'never read the current blob',
    );
  });

  it('fetches the version of a blob deleted since, and re-running is a cache hit', async () => {
    const target = path.join(work, 'retired');
    const run = await fetch({ modelPath: 'retired/model.onnx', versionId: ids.retired, targetPath: target });
    assert.equal(run.result, 'Succeeded', describeRun(run));
    assert.ok(fs.readFileSync(path.join(target, 'model.onnx')).equals(retired));
    const again = await fetch({ modelPath: 'retired/model.onnx', versionId: ids.retired, targetPath: target });
    assert.match(again.message, /already in/, describeRun(again));
  });

  it('survives connection resets inside version ranges: resumed, byte-exact, Content-MD5 verified', async () => {
    proxy.resetStats();
    proxy.setFaults([{ match: /versionid=/, resetAfterBytes: 100_000, every: 2, times: 3 }]);
    try {
      const target = path.join(work, 'v2');
      const run = await fetch(
        { modelPath: 'churn/model.onnx', versionId: ids.v2, targetPath: target },
        `${proxy.url}/${AZURITE_ACCOUNT}`,
      );
      assert.equal(run.result, 'Succeeded', describeRun(run));
      assert.ok(fs.readFileSync(path.join(target, 'model.onnx')).equals(v2));
      assert.equal(run.outputs.ModelSha256, sha256(v2));
      assert.match(run.summaries.join('\n'), /Content-MD5/);
      assert.ok(proxy.stats.faultsInjected >= 1);
      assert.ok(
        run.logLines.some((l) => /interrupted .*resuming/.test(l)),
        describeRun(run),
      );
    } finally {
      proxy.setFaults([]);
    }
  });

  it('a version id that does not exist fails listing the versions and snapshots that do, and leaves nothing', async () => {
    const target = path.join(work, 'missing');
    const run = await fetch({
      modelPath: 'churn/model.onnx',
      versionId: '2026-11-23T00:00:00.0000000Z',
      targetPath: target,
    });
    assert.equal(run.result, 'Failed');
    assert.match(run.message, /'churn\/model\.onnx' has no version id 2026-11-23T00:00:00\.0000000Z\./);
    assert.match(
      run.message,
      new RegExp(
        `Its versions: ${ids.v3} \\(current, 640000 bytes, modified 2026-11-22T10:00:00\\.000Z\\), ${ids.v2} \\(650001 bytes, [^)]*\\), ${ids.v1} \\(700000 bytes`,
      ),
    );
    assert.match(run.message, new RegExp(`Its snapshots: ${ids.snap} `));
    assert.ok(
      blob.requests.some((r) =>
        /comp=list&prefix=churn%2Fmodel\.onnx&restype=container&include=(snapshots,versions|versions,snapshots)$/.test(
          r,
        ),
      ),
      blob.requests.join('\n'),
    );
    assert.deepEqual(fs.existsSync(target) ? fs.readdirSync(target) : [], []);
    const none = await fetch({ modelPath: 'churn/other.onnx', versionId: ids.v1, targetPath: path.join(work, 'none') });
    assert.match(none.message, /No blob is named 'churn\/other\.onnx'.*there is: churn\/model\.onnx/);
  });
});
