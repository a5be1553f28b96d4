import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

import { type FaultProxy, startFaultProxy } from '../support/faultProxy';

describe('fault proxy (test support)', () => {
  let backend: http.Server;
  let proxy: FaultProxy;
  const body = Buffer.alloc(256 * 1024, 7);

  before(async () => {
    backend = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'PUT') res.end(`got ${Buffer.concat(chunks).length}`);
        else res.end(body);
      });
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    proxy = await startFaultProxy({ target: `http://127.0.0.1:${(backend.address() as AddressInfo).port}` });
  });
  after(async () => {
    await proxy.stop();
    backend.close();
  });
  beforeEach(() => {
    proxy.setFaults([]);
    proxy.resetStats();
  });

  it('forwards bodies both ways and counts the bytes', async () => {
    const got = Buffer.from(await (await fetch(`${proxy.url}/blob`)).arrayBuffer());
    assert.equal(got.length, body.length);
    const put = await fetch(`${proxy.url}/up`, { method: 'PUT', body: Buffer.alloc(1000) });
    assert.equal(await put.text(), 'got 1000');
    assert.equal(proxy.stats.bytesToClient, body.length + 'got 1000'.length);
    assert.equal(proxy.stats.bytesToServer, 1000);
  });

  it('answers 503 with Retry-After for the matching request only, the given number of times', async () => {
    proxy.setFaults([{ match: /^GET \/flaky/, status: 503, retryAfter: '2', times: 1 }]);
    const first = await fetch(`${proxy.url}/flaky`);
    assert.equal(first.status, 503);
    assert.equal(first.headers.get('retry-after'), '2');
    await first.text();
    assert.equal((await fetch(`${proxy.url}/flaky`)).status, 200);
    assert.equal((await fetch(`${proxy.url}/other`)).status, 200);
  });

  it('cuts a response after the given number of bytes', async () => {
    proxy.setFaults([{ resetAfterBytes: 10_000, times: 1 }]);
    await assert.rejects(async () => {
      const res = await fetch(`${proxy.url}/blob`);
      await res.arrayBuffer();
    });
    assert.ok(proxy.stats.bytesToClient <= 10_000, `sent ${proxy.stats.bytesToClient}`);
    const again = Buffer.from(await (await fetch(`${proxy.url}/blob`)).arrayBuffer());
    assert.equal(again.length, body.length);
  });

  it('cuts an upload after the given number of request bytes', async () => {
    proxy.setFaults([{ resetAfterBytes: 5000, direction: 'request', times: 1 }]);
    await assert.rejects(
      fetch(`${proxy.url}/up`, { method: 'PUT', body: Buffer.alloc(200_000) }).then((r) => r.text()),
    );
    assert.equal(proxy.stats.requests[0].fault, 'reset after 5000 request bytes');
  });
});
