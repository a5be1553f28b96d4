import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { Agent } from 'node:https';
import * as path from 'node:path';

import {
  BlobServiceClient,
  newPipeline,
  type StoragePipelineOptions,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';

import { makeServerCertificates } from './kube/certs';
import { makeTempDir, repoRoot } from './paths';
import { freePort, waitForPort } from './ports';

/** Azurite's well-known development account (public, documented by Microsoft; not a secret). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteServer {
  /** http://127.0.0.1:<port>/devstoreaccount1 (https:// with `https: true`) */
  blobEndpoint: string;
  accountName: string;
  accountKey: string;
  connectionString: string;
  port: number;
  /** With `https: true`: the PEM file of the throwaway CA that signed Azurite's certificate. */
  caFile?: string;
  /** A shared-key client for test set-up and checks; trusts `caFile` on HTTPS. */
  serviceClient(): BlobServiceClient;
  /** With `recordRequests: true`: every request Azurite received so far, as its debug log tells. */
  requests(): AzuriteRequest[];
  stop(): Promise<void>;
}

export interface AzuriteRequest {
  method: string;
  url: string;
  /** The Authorization header's scheme ('Bearer', 'SharedKey'), or 'none' (anonymous or SAS). */
  authScheme: string;
  userAgent: string;
}

export interface AzuriteOptions {
  /** Keep blobs on disk in this folder (for GiB-sized blobs) instead of in memory. */
  location?: string;
  /** Azurite's own debug log file, for diagnosing a failing test. */
  debugLog?: string;
  /** Serve HTTPS with a certificate from a throwaway CA (`caFile`). */
  https?: boolean;
  /**
   * Accept Entra ID bearer tokens (`--oauth basic`, HTTPS only): Azurite checks a token's issuer
   * (https://sts.windows.net/<tenant>/), audience (https://storage.azure.com or the account's
   * blob URL) and lifetime, not its signature. Shared key and SAS still work.
   */
  oauth?: boolean;
  /** Keep a debug log so `requests()` can tell which requests came and how they authenticated. */
  recordRequests?: boolean;
  /** Listen on this port (blob URIs carry it, so a stable one keeps them stable); else a free one. */
  port?: number;
}

/**
 * Starts Azurite's Blob service on a free 127.0.0.1 port, in its own process so a test's
 * memory or CPU figures never include it.
 */
export async function startAzurite(opts: AzuriteOptions = {}): Promise<AzuriteServer> {
  const port = opts.port ?? (await freePort());
  const bin = path.join(repoRoot, 'node_modules', '.bin', 'azurite-blob');
  const args = ['--blobHost', '127.0.0.1', '--blobPort', String(port), '--skipApiVersionCheck', '--loose', '--silent'];
  let ownedDir: string | undefined;
  if (opts.location) {
    fs.mkdirSync(opts.location, { recursive: true });
    args.push('--location', opts.location);
  } else {
    // In memory; run from a temp cwd so nothing Azurite might write lands in the repo.
    ownedDir = makeTempDir('azurite-');
    args.push('--inMemoryPersistence');
  }
  if (opts.oauth && !opts.https)
    throw new Error('Azurite accepts OAuth only over HTTPS: pass { https: true, oauth: true }');
  const tlsDir = opts.https || opts.recordRequests ? makeTempDir('azurite-tls-') : undefined;
  let caFile: string | undefined;
  let ca: string | undefined;
  if (opts.https && tlsDir) {
    const certs = await makeServerCertificates();
    ca = certs.caPem;
    caFile = path.join(tlsDir, 'ca.pem');
    fs.writeFileSync(caFile, certs.caPem);
    fs.writeFileSync(path.join(tlsDir, 'server.pem'), certs.certPem);
    fs.writeFileSync(path.join(tlsDir, 'server.key'), certs.keyPem);
    args.push('--cert', path.join(tlsDir, 'server.pem'), '--key', path.join(tlsDir, 'server.key'));
  }
  if (opts.oauth) args.push('--oauth', 'basic');
  const debugLog = opts.debugLog ?? (opts.recordRequests && tlsDir ? path.join(tlsDir, 'debug.log') : undefined);
  if (debugLog) args.push('--debug', debugLog);
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: opts.location ?? ownedDir });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      waitForPort(port, 30_000),
      exited.then(() => {
        throw new Error(`azurite-blob exited before listening: ${stderr}`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const protocol = opts.https ? 'https' : 'http';
  const blobEndpoint = `${protocol}://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  // The test process started before this CA existed, so NODE_EXTRA_CA_CERTS cannot help it: an agent that trusts the CA.
  const agent = ca ? new Agent({ ca, keepAlive: true }) : undefined;
  return {
    blobEndpoint,
    accountName: AZURITE_ACCOUNT,
    accountKey: AZURITE_KEY,
    connectionString: `DefaultEndpointsProtocol=${protocol};AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${blobEndpoint};`,
    port,
    caFile,
    serviceClient() {
      const options: StoragePipelineOptions & { agent?: Agent } = { agent };
      return new BlobServiceClient(
        blobEndpoint,
        newPipeline(new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY), options),
      );
    },
    requests() {
      if (!debugLog || !opts.recordRequests)
        throw new Error('start Azurite with { recordRequests: true } to see its requests');
      const log = fs.existsSync(debugLog) ? fs.readFileSync(debugLog, 'utf8') : '';
      const seen: AzuriteRequest[] = [];
      for (const m of log.matchAll(
        /BlobStorageContextMiddleware: RequestMethod=(\S+) RequestURL=(\S+) RequestHeaders:(\{.*?\}) ClientIP=/g,
      )) {
        const headers = JSON.parse(m[3]) as Record<string, string | undefined>;
        seen.push({
          method: m[1],
          url: m[2],
          authScheme: headers.authorization?.split(' ')[0] ?? 'none',
          userAgent: headers['user-agent'] ?? '',
        });
      }
      return seen;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      agent?.destroy();
      if (ownedDir) fs.rmSync(ownedDir, { recursive: true, force: true });
      if (tlsDir) fs.rmSync(tlsDir, { recursive: true, force: true });
    },
  };
}
