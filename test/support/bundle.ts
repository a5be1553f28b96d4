import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

import { repoRoot } from './paths';

const bundled = new Set<string>();

/**
 * Bundles the named tasks into dist/tasks, once per test process, so a test file run alone runs
 * the current code (under `npm test` the build has just done it, and this costs a second).
 */
export function bundleTasks(...names: string[]): void {
  const missing = names.filter((name) => !bundled.has(name));
  if (missing.length === 0) return;
  execFileSync(process.execPath, [path.join(repoRoot, '.ci', 'bundle.mjs'), ...missing], {
    cwd: repoRoot,
    stdio: 'pipe',
  });
  missing.forEach((name) => bundled.add(name));
}
