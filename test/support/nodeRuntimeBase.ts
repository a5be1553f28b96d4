import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A minimal Node runtime as a deterministic rootfs tar, since no base image can be pulled here: the
 * host's node binary at /usr/local/bin/node, every shared library `ldd` lists for it (plus glibc's
 * companions that native addons such as onnxruntime-node link), /etc/passwd and /etc/group with a
 * non-root user `node` (1000:1000), and /tmp. Same host, same bytes: fixed mtimes, owners and order.
 * `importNodeRuntimeImage` turns the tar into a local podman image tag.
 */

export interface RootfsTar {
  path: string;
  /** Hex SHA-256 of the uncompressed tar (the layer's diff ID without the "sha256:" prefix). */
  sha256: string;
  size: number;
}

export interface NodeRuntimeOptions {
  /** Default: the running node (process.execPath). */
  nodeBinary?: string;
  /** More ELF files whose libraries the image must carry (e.g. a native addon). */
  extraElfFiles?: string[];
  /**
   * Also the host's npm (/usr/local/bin/npm), /bin/sh and /usr/bin/env: a base for a Dockerfile's build
   * stage (RUN npm ci), as node:20-bookworm-slim is for real users. The runtime base leaves them out.
   */
  buildTools?: boolean;
}

/** Libraries native addons link that node itself may not (onnxruntime-node needs librt). */
const GLIBC_COMPANIONS = ['librt.so.1', 'libdl.so.2', 'libpthread.so.0', 'libresolv.so.2'];

/** The libraries `ldd` lists for one ELF file, as absolute paths (the vDSO has none and is skipped). */
async function sharedLibraries(elfFile: string): Promise<string[]> {
  const { stdout } = await run('ldd', [elfFile]);
  const libraries: string[] = [];
  for (const line of stdout.split('\n')) {
    const match = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(0x/.exec(line);
    if (match) libraries.push(match[1]);
  }
  return libraries;
}

/** Copies a host file into the staging root at its real path, with a symlink where ldd named it otherwise. */
function stageHostFile(root: string, hostPath: string, mode: number): void {
  const realFile = fs.realpathSync(hostPath);
  const target = path.join(root, realFile);
  if (!fs.existsSync(target)) {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.copyFileSync(realFile, target);
    fs.chmodSync(target, mode);
  }
  const namedAt = path.join(fs.realpathSync(path.dirname(hostPath)), path.basename(hostPath));
  if (namedAt !== realFile) {
    const link = path.join(root, namedAt);
    if (!fs.existsSync(link)) {
      fs.mkdirSync(path.dirname(link), { recursive: true });
      fs.symlinkSync(path.relative(path.dirname(namedAt), realFile), link);
    }
  }
}

export async function buildNodeRuntimeRootfsTar(outPath: string, options: NodeRuntimeOptions = {}): Promise<RootfsTar> {
  const nodeBinary = fs.realpathSync(options.nodeBinary ?? process.execPath);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-runtime-rootfs-'));
  try {
    const binDir = path.join(root, 'usr', 'local', 'bin');
    fs.mkdirSync(binDir, { recursive: true });
    fs.copyFileSync(nodeBinary, path.join(binDir, 'node'));
    fs.chmodSync(path.join(binDir, 'node'), 0o755);

    const elfFiles = [nodeBinary, ...(options.extraElfFiles ?? [])];
    if (options.buildTools) elfFiles.push(...(await stageBuildTools(root)));
    const libraries = new Set<string>();
    for (const elf of elfFiles) {
      for (const library of await sharedLibraries(elf)) libraries.add(library);
    }
    const libcDir = [...libraries]
      .map((l) => path.dirname(l))
      .find((dir) => fs.existsSync(path.join(dir, 'libc.so.6')));
    for (const companion of GLIBC_COMPANIONS) {
      if (libcDir && fs.existsSync(path.join(libcDir, companion))) libraries.add(path.join(libcDir, companion));
    }
    for (const library of [...libraries].sort()) stageHostFile(root, library, 0o755);

    // Merged-/usr hosts reach /lib and /lib64 through symlinks; the loader path in node does too.
    for (const top of options.buildTools ? ['/lib', '/lib64', '/bin'] : ['/lib', '/lib64']) {
      if (fs.existsSync(top) && fs.lstatSync(top).isSymbolicLink() && !fs.existsSync(path.join(root, top))) {
        fs.symlinkSync(fs.readlinkSync(top), path.join(root, top));
      }
    }

    const etc = path.join(root, 'etc');
    fs.mkdirSync(etc, { recursive: true });
    fs.writeFileSync(
      path.join(etc, 'passwd'),
      'root:x:0:0:root:/root:/usr/sbin/nologin\nnode:x:1000:1000:node:/home/node:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
    );
    fs.writeFileSync(path.join(etc, 'group'), 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n');
    fs.writeFileSync(path.join(etc, 'nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files dns\n');
    fs.writeFileSync(path.join(etc, 'hosts'), '127.0.0.1 localhost\n::1 localhost\n');
    for (const file of ['passwd', 'group', 'nsswitch.conf', 'hosts']) fs.chmodSync(path.join(etc, file), 0o644);
    fs.mkdirSync(path.join(root, 'tmp'));
    fs.chmodSync(path.join(root, 'tmp'), 0o1777);
    fs.mkdirSync(path.join(root, 'home', 'node'), { recursive: true });
    fs.mkdirSync(path.join(root, 'root'), { mode: 0o700 });
    fs.mkdirSync(path.join(root, 'dev'));
    fs.mkdirSync(path.join(root, 'proc'));
    fs.mkdirSync(path.join(root, 'sys'));
    fs.chmodSync(root, 0o755);
    for (const dir of ['usr', 'usr/local', 'usr/local/bin', 'etc', 'home', 'dev', 'proc', 'sys'])
      fs.chmodSync(path.join(root, dir), 0o755);

    fs.mkdirSync(path.dirname(path.resolve(outPath)), { recursive: true });
    const temp = `${outPath}.${process.pid}.tmp`;
    await run('tar', [
      '--sort=name',
      '--mtime=@0',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--format=gnu',
      '-C',
      root,
      '-cf',
      temp,
      '.',
    ]);
    fs.renameSync(temp, outPath);
    const bytes = fs.readFileSync(outPath);
    return { path: outPath, sha256: crypto.createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** npm with its launchers, and sh and env for RUN lines; returns the ELF files whose libraries they need. */
async function stageBuildTools(root: string): Promise<string[]> {
  const npmDir = npmPackageDir();
  const lib = path.join(root, 'usr', 'local', 'lib', 'node_modules');
  fs.mkdirSync(lib, { recursive: true });
  fs.cpSync(npmDir, path.join(lib, 'npm'), { recursive: true, verbatimSymlinks: true });
  fs.symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', path.join(root, 'usr', 'local', 'bin', 'npm'));
  fs.symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', path.join(root, 'usr', 'local', 'bin', 'npx'));
  const shell = fs.realpathSync('/bin/sh');
  const env = fs.realpathSync('/usr/bin/env');
  const usrBin = path.join(root, 'usr', 'bin');
  fs.mkdirSync(usrBin, { recursive: true });
  fs.copyFileSync(shell, path.join(usrBin, path.basename(shell)));
  fs.chmodSync(path.join(usrBin, path.basename(shell)), 0o755);
  if (path.basename(shell) !== 'sh') fs.symlinkSync(path.basename(shell), path.join(usrBin, 'sh'));
  fs.copyFileSync(env, path.join(usrBin, 'env'));
  fs.chmodSync(path.join(usrBin, 'env'), 0o755);
  return [shell, env];
}

/** The folder of the host's npm package: from npm_execpath when run under npm, else from npm on PATH. */
function npmPackageDir(): string {
  const candidates = [
    process.env.npm_execpath,
    ...(process.env.PATH ?? '')
      .split(path.delimiter)
      .filter(Boolean)
      .map((dir) => path.join(dir, 'npm')),
  ];
  for (const candidate of candidates) {
    if (!candidate || !fs.existsSync(candidate)) continue;
    for (let dir = path.dirname(fs.realpathSync(candidate)); dir !== path.dirname(dir); dir = path.dirname(dir)) {
      const manifest = path.join(dir, 'package.json');
      if (
        fs.existsSync(manifest) &&
        (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name === 'npm'
      )
        return dir;
    }
  }
  throw new Error('npm was not found (neither npm_execpath nor npm on PATH)');
}

/** Options podman needs on this kind of machine (and CI): runc, bounded ulimits, cgroupfs. */
export const PODMAN_GLOBAL_ARGS = ['--cgroup-manager', 'cgroupfs'];
export const PODMAN_RUN_ARGS = ['--runtime', 'runc', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

/** Why podman cannot run containers here, or undefined when it can. */
export async function podmanUnusableReason(): Promise<string | undefined> {
  try {
    await run('podman', [...PODMAN_GLOBAL_ARGS, 'info', '--format', '{{.Host.OCIRuntime.Name}}'], { timeout: 30_000 });
  } catch (error) {
    const text = `${(error as { stderr?: string }).stderr ?? ''} ${(error as Error).message}`;
    return /ENOENT/.test(text) ? 'podman is not installed' : `podman info failed: ${text.trim().split('\n')[0]}`;
  }
  try {
    await run('runc', ['--version'], { timeout: 10_000 });
  } catch {
    return 'runc is not installed (podman here needs --runtime runc)';
  }
  return undefined;
}

/** `podman import` of a rootfs tar as a local image tag, with node as the default command; returns the image ID. */
export async function importNodeRuntimeImage(tar: string, tag: string): Promise<string> {
  const { stdout } = await run(
    'podman',
    [
      ...PODMAN_GLOBAL_ARGS,
      'import',
      '--change',
      'ENV PATH=/usr/local/bin:/usr/bin:/bin',
      '--change',
      'CMD ["/usr/local/bin/node"]',
      tar,
      tag,
    ],
    { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 },
  );
  // The last line is the image ID, as "sha256:<hex>" on some podman versions: `podman rmi` takes the bare hex.
  return (stdout.trim().split('\n').pop() ?? '').replace(/^sha256:/, '');
}
