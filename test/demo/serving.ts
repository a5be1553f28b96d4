// Staging the sample app as it ships: built code and production dependencies only.
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { repoRoot } from '../support/paths';

const sampleApp = path.join(repoRoot, 'sample-app');

/** A fingerprint of what the staged app is made of: the lockfile and every built file. */
function sampleAppFingerprint(): string {
  const hash = crypto.createHash('sha256');
  hash.update(fs.readFileSync(path.join(sampleApp, 'package-lock.json')));
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else hash.update(`${path.relative(sampleApp, full)}\0`).update(fs.readFileSync(full));
    }
  };
  walk(path.join(sampleApp, 'dist'));
  return hash.digest('hex');
}

/**
 * Copies the built sample app with its production dependencies into `dir` (what a Dockerfile's
 * `npm ci --omit=dev` stage makes), reusing the last copy when nothing changed.
 */
export async function stageSampleApp(dir: string, say: (line: string) => void): Promise<string> {
  if (!fs.existsSync(path.join(sampleApp, 'dist', 'main.js')))
    throw new Error('sample-app/dist is missing: run npm run build');
  const fingerprint = sampleAppFingerprint();
  const stamp = path.join(dir, '.staged');
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === fingerprint) {
    say('    app directory: cached (sample-app unchanged)');
    return dir;
  }
  say('    staging the sample app: dist/ and production node_modules');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const item of ['package.json', 'package-lock.json', 'dist', 'node_modules']) {
    fs.cpSync(path.join(sampleApp, item), path.join(dir, item), { recursive: true, verbatimSymlinks: true });
  }
  // Offline: prune works from the lockfile and removes what only development needs.
  execFileSync('npm', ['prune', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--offline'], {
    cwd: dir,
    stdio: 'ignore',
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
  });
  fs.writeFileSync(path.join(dir, '.dockerignore'), '.staged\n');
  fs.writeFileSync(stamp, fingerprint);
  return dir;
}
