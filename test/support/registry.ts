import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, waitForPort } from './ports';
import { makeTempDir } from './paths';

/**
 * A real distribution registry (Debian's `docker-registry`) on a free 127.0.0.1 port, with its
 * own temp storage and htpasswd basic auth. `relativeurls` keeps upload Locations relative, so a
 * fault proxy in front of it stays in the path of every request.
 */
export interface TestRegistry {
  /** host:port, as in image references. */
  host: string;
  url: string;
  port: number;
  /** Empty when started with auth: 'none'. */
  username: string;
  password: string;
  storageDir: string;
  /** Everything the registry printed so far (access log included). */
  logs(): string;
  stop(): Promise<void>;
}

export interface StartRegistryOptions {
  auth?: 'htpasswd' | 'none';
  username?: string;
  password?: string;
  /** Keep the registry's blobs in this folder, across runs (the demo's cache); else a temp folder. */
  storageDir?: string;
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const binary = '/usr/bin/docker-registry';
  if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: apt-get install docker-registry`);
  const dir = makeTempDir('registry-');
  const storageDir = opts.storageDir ?? path.join(dir, 'storage');
  fs.mkdirSync(storageDir, { recursive: true });
  const port = await freePort();
  const auth = opts.auth ?? 'htpasswd';
  const username = auth === 'none' ? '' : (opts.username ?? 'ci-pusher');
  const password = auth === 'none' ? '' : (opts.password ?? `pw-${crypto.randomBytes(12).toString('hex')}`);
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storageDir}`,
    '  delete:',
    '    enabled: true',
    '  cache:',
    '    blobdescriptor: inmemory',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  relativeurls: true',
    `  secret: ${crypto.randomBytes(16).toString('hex')}`,
  ];
  if (auth === 'htpasswd') {
    const htpasswd = path.join(dir, 'htpasswd');
    // -B bcrypt (the only hash distribution accepts), -b password from argv is fine for a throwaway test user.
    fs.writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', username, password], { encoding: 'utf8' }));
    lines.push('auth:', '  htpasswd:', '    realm: test-registry', `    path: ${htpasswd}`);
  }
  const configFile = path.join(dir, 'config.yml');
  fs.writeFileSync(configFile, lines.join('\n') + '\n');

  let output = '';
  const child: ChildProcess = spawn(binary, ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (output += c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      waitForPort(port, 20_000),
      exited.then(() => {
        throw new Error(`docker-registry exited at start:\n${output}`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    port,
    username,
    password,
    storageDir,
    logs: () => output,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
