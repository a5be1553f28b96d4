import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, waitForPort } from './ports';
import { makeTempDir, repoRoot } from './paths';

/** Azurite's well-known development account (public, documented by Microsoft; not a secret). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteServer {
  /** http://127.0.0.1:<port>/devstoreaccount1 */
  blobEndpoint: string;
  accountName: string;
  accountKey: string;
  connectionString: string;
  port: number;
  stop(): Promise<void>;
}

export interface AzuriteOptions {
  /** Keep blobs on disk in this folder (for GiB-sized blobs) instead of in memory. */
  location?: string;
  /** Azurite's own debug log file, for diagnosing a failing test. */
  debugLog?: string;
}

/**
 * Starts Azurite's Blob service on a free 127.0.0.1 port, in its own process so a test's
 * memory or CPU figures never include it.
 */
export async function startAzurite(opts: AzuriteOptions = {}): Promise<AzuriteServer> {
  const port = await freePort();
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
  if (opts.debugLog) args.push('--debug', opts.debugLog);
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
  const blobEndpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  return {
    blobEndpoint,
    accountName: AZURITE_ACCOUNT,
    accountKey: AZURITE_KEY,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${blobEndpoint};`,
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      if (ownedDir) fs.rmSync(ownedDir, { recursive: true, force: true });
    },
  };
}
