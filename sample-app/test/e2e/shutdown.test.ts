// SIGTERM: readiness turns false, requests in flight (even half-sent ones) complete, new connections are
// refused, and the process exits 0; past the grace period it exits 1.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import path from 'node:path';

import { decodeMlpLayers, referenceForward, sampleRows } from '../../scripts/mlp-model.js';
import { postJson, SAMPLE_MODEL_DIR, startApp } from '../support/app-process.js';

const layers = decodeMlpLayers(readFileSync(path.join(SAMPLE_MODEL_DIR, 'model.onnx')));

interface HalfSentRequest {
  socket: Socket;
  rest: string;
  response: Promise<string>;
}

/** Sends the headers and half the body of POST /score, and keeps the rest for later. */
function startHalfSentRequest(port: number, rows: number[][]): Promise<HalfSentRequest> {
  const body = JSON.stringify({ data: rows });
  const head = `POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  const half = Math.floor(body.length / 2);
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head + body.slice(0, half));
      let text = '';
      const response = new Promise<string>((done) => {
        socket.on('data', (chunk) => {
          text += chunk.toString('utf8');
        });
        socket.on('close', () => done(text));
      });
      resolve({ socket, rest: body.slice(half), response });
    });
    socket.on('error', reject);
  });
}

function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMillis = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('graceful shutdown', function () {
  it('drains on SIGTERM: not ready, requests in flight complete, new ones refused, exit code 0', async () => {
    const app = await startApp({ env: { SHUTDOWN_DELAY_MS: '400', SHUTDOWN_GRACE_MS: '20000' } });
    const rows = sampleRows(8, 4, 3);
    const expected = referenceForward(layers, rows);
    const halfSent = await Promise.all(rows.map((row) => startHalfSentRequest(app.port, [row])));
    const inFlight = () =>
      fetch(`${app.url}/metrics`)
        .then((r) => r.text())
        .then((t) => Number(/^http_requests_in_flight (\d+)/m.exec(t)?.[1] ?? 0));
    await until(async () => (await inFlight()) >= 9, 'the half-sent requests to reach the server');
    // A burst of complete requests races the signal: every one must be answered.
    const burst = Array.from({ length: 64 }, (_, i) =>
      postJson(`${app.url}/score`, { data: [rows[i % 8]] }).catch((error: Error) => ({
        status: 0,
        body: error.message,
      })),
    );

    app.process.kill('SIGTERM');
    await until(
      async () =>
        (await fetch(`${app.url}/readyz`).then(
          (r) => r.status,
          () => 0,
        )) === 503,
      'readiness to turn false',
    );
    await until(() => connectionRefused(app.port), 'the port to close');

    // write, not end: a client that half-closes its side gives up its response (Node's HTTP server ends such sockets)
    for (const request of halfSent) request.socket.write(request.rest);
    const responses = await Promise.all(halfSent.map((request) => request.response));
    responses.forEach((raw, i) => {
      assert.match(raw, /^HTTP\/1\.1 200 /, raw);
      assert.match(raw, /\r\nconnection: close\r\n/i);
      const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
      assert.equal(body.outputs.label[0], expected.label[i]);
    });
    for (const result of await Promise.all(burst)) assert.equal(result.status, 200, JSON.stringify(result.body));
    assert.equal(await app.exited, 0);
    assert.ok(app.logs.some((line) => line.msg === 'drained; exiting'));
  });

  it('exits 1 when requests are still in flight at the end of the grace period', async () => {
    const app = await startApp({ env: { SHUTDOWN_GRACE_MS: '800' } });
    const stuck = await startHalfSentRequest(app.port, [[1, 2, 3, 4]]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    app.process.kill('SIGTERM');
    assert.equal(await app.exited, 1);
    assert.ok(
      app.logs.some(
        (line) =>
          line.level === 'fatal' && /requests still in flight after SHUTDOWN_GRACE_MS \(800 ms\)/.test(line.msg),
      ),
    );
    stuck.socket.destroy();
  });
});
