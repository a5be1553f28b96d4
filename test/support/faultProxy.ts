import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy in front of a real local service that injects the faults clients must survive:
 * connection resets part-way through a body, error statuses with Retry-After, and stalls.
 * It also counts bytes each way, which is how tests prove "uploaded 0 bytes" or "resumed".
 */

export interface FaultRule {
  /** Only requests whose "METHOD path?query" matches; all when absent. */
  match?: RegExp;
  /** Apply to every k-th matching request (1 = each). */
  every?: number;
  /** Stop after this many applications. */
  times?: number;
  /** Answer with this status instead of forwarding. */
  status?: number;
  retryAfter?: string;
  /** Cut the connection after this many body bytes have passed, in the response or the request. */
  resetAfterBytes?: number;
  direction?: 'response' | 'request';
  /** Wait before forwarding. */
  stallMs?: number;
}

export interface ProxiedRequest {
  method: string;
  path: string;
  status?: number;
  fault?: string;
  bytesIn: number;
  bytesOut: number;
}

export interface FaultProxy {
  url: string;
  port: number;
  stats: { bytesToClient: number; bytesToServer: number; requests: ProxiedRequest[]; faultsInjected: number };
  setFaults(rules: FaultRule[]): void;
  resetStats(): void;
  stop(): Promise<void>;
}

interface ActiveRule extends FaultRule {
  seen: number;
  applied: number;
}

export async function startFaultProxy(opts: { target: string; rules?: FaultRule[] }): Promise<FaultProxy> {
  const target = new URL(opts.target);
  let rules: ActiveRule[] = [];
  const stats: FaultProxy['stats'] = { bytesToClient: 0, bytesToServer: 0, requests: [], faultsInjected: 0 };

  const setFaults = (next: FaultRule[]) => {
    rules = next.map((r) => ({ ...r, seen: 0, applied: 0 }));
  };
  setFaults(opts.rules ?? []);

  const pickRule = (key: string): ActiveRule | undefined => {
    for (const rule of rules) {
      if (rule.match && !rule.match.test(key)) continue;
      if (rule.times !== undefined && rule.applied >= rule.times) continue;
      rule.seen++;
      if (rule.seen % (rule.every ?? 1) !== 0) continue;
      rule.applied++;
      return rule;
    }
    return undefined;
  };

  // A rejected handler must not become an unhandled rejection: each request ends in its own answer.
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const key = `${req.method} ${req.url}`;
    const record: ProxiedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', bytesIn: 0, bytesOut: 0 };
    stats.requests.push(record);
    const rule = pickRule(key);
    if (rule) stats.faultsInjected++;

    if (rule?.stallMs) {
      record.fault = `stall ${rule.stallMs}ms`;
      await new Promise((r) => setTimeout(r, rule.stallMs));
    }
    if (rule?.status) {
      record.fault = `status ${rule.status}`;
      record.status = rule.status;
      req.resume();
      req.on('end', () => {
        const headers: http.OutgoingHttpHeaders = { 'content-type': 'text/plain', connection: 'close' };
        if (rule.retryAfter !== undefined) headers['retry-after'] = rule.retryAfter;
        res.writeHead(rule.status!, headers);
        res.end(`injected ${rule.status}`);
      });
      return;
    }
    const resetRequestAt =
      rule?.resetAfterBytes !== undefined && rule.direction === 'request' ? rule.resetAfterBytes : undefined;
    const resetResponseAt =
      rule?.resetAfterBytes !== undefined && rule.direction !== 'request' ? rule.resetAfterBytes : undefined;

    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (upRes) => {
        record.status = upRes.statusCode;
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.on('data', (chunk: Buffer) => {
          if (resetResponseAt !== undefined && record.bytesOut + chunk.length > resetResponseAt) {
            const keep = Math.max(0, resetResponseAt - record.bytesOut);
            if (keep > 0) {
              res.write(chunk.subarray(0, keep));
              record.bytesOut += keep;
              stats.bytesToClient += keep;
            }
            record.fault = `reset after ${resetResponseAt} response bytes`;
            upRes.destroy();
            // Let the partial write reach the socket, then cut it without a clean end.
            setImmediate(() => req.socket.destroy());
            return;
          }
          record.bytesOut += chunk.length;
          stats.bytesToClient += chunk.length;
          if (!res.write(chunk)) {
            upRes.pause();
            res.once('drain', () => upRes.resume());
          }
        });
        upRes.on('end', () => res.end());
        upRes.on('error', () => req.socket.destroy());
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('upstream error');
      } else req.socket.destroy();
    });
    req.on('data', (chunk: Buffer) => {
      if (resetRequestAt !== undefined && record.bytesIn + chunk.length > resetRequestAt) {
        record.fault = `reset after ${resetRequestAt} request bytes`;
        upstream.destroy();
        req.socket.destroy();
        return;
      }
      record.bytesIn += chunk.length;
      stats.bytesToServer += chunk.length;
      if (!upstream.write(chunk)) {
        req.pause();
        upstream.once('drain', () => req.resume());
      }
    });
    req.on('end', () => upstream.end());
    req.on('aborted', () => upstream.destroy());
  };
  const server = http.createServer((req, res) => void handle(req, res));
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stats,
    setFaults,
    resetStats() {
      stats.bytesToClient = 0;
      stats.bytesToServer = 0;
      stats.requests.length = 0;
      stats.faultsInjected = 0;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
