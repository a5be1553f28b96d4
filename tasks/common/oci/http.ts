import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';

/**
 * A small HTTP client over node:http(s): registry uploads need exact control of
 * Content-Length, streamed bodies with back-pressure, and redirects to blob storage that
 * must not carry the registry's Authorization header.
 */

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** A buffer, or a factory so a retried request can stream the body again. */
  body?: Buffer | (() => Readable);
  bodyLength?: number;
  timeoutMs?: number;
  /** Called as request body bytes are written. */
  onBodyBytes?: (n: number) => void;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  url: URL;
  header: (name: string) => string | undefined;
}

export interface BufferedResponse extends HttpResponse {
  body: Buffer;
}

export interface StreamedResponse extends HttpResponse {
  stream: http.IncomingMessage;
}

const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 8 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 8 }),
};

/** A response body larger than this is an error for manifests, configs and tokens. */
const MAX_BUFFERED = 32 << 20;

function headerOf(headers: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function sendRequest(req: HttpRequest): Promise<StreamedResponse> {
  return new Promise((resolve, reject) => {
    const isHttps = req.url.protocol === 'https:';
    const headers: Record<string, string> = { 'user-agent': 'model-delivery-bake/1', ...(req.headers ?? {}) };
    const body = req.body;
    if (Buffer.isBuffer(body)) headers['content-length'] = String(body.length);
    else if (body) {
      if (req.bodyLength === undefined) throw new Error('a streamed body needs its length');
      headers['content-length'] = String(req.bodyLength);
    } else if (req.method !== 'GET' && req.method !== 'HEAD') headers['content-length'] = '0';
    const request = (isHttps ? https : http).request(
      req.url,
      { method: req.method, headers, agent: isHttps ? agents.https : agents.http },
      (res) => {
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          url: req.url,
          header: (n) => headerOf(res.headers, n),
          stream: res,
        });
      },
    );
    const timeout = req.timeoutMs ?? 120_000;
    request.setTimeout(timeout, () =>
      request.destroy(
        Object.assign(new Error(`no answer from ${req.url.host} within ${timeout} ms`), { code: 'ETIMEDOUT' }),
      ),
    );
    request.on('error', reject);
    if (Buffer.isBuffer(body)) request.end(body);
    else if (body) {
      const source = body();
      source.on('error', (err) => request.destroy(err));
      if (req.onBodyBytes) source.on('data', (chunk: Buffer) => req.onBodyBytes!(chunk.length));
      source.pipe(request);
    } else request.end();
  });
}

export async function readBody(res: StreamedResponse, limit = MAX_BUFFERED): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.stream) {
    total += (chunk as Buffer).length;
    if (total > limit) {
      res.stream.destroy();
      throw new Error(`the answer from ${res.url.host} is larger than ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function requestBuffered(req: HttpRequest): Promise<BufferedResponse> {
  const res = await sendRequest(req);
  const body = req.method === 'HEAD' ? Buffer.alloc(0) : await readBody(res);
  if (req.method === 'HEAD') res.stream.resume();
  return { status: res.status, headers: res.headers, url: res.url, header: res.header, body };
}

/** Drains a response we do not need the body of, so its socket returns to the pool. */
export function discard(res: StreamedResponse): void {
  res.stream.resume();
}
