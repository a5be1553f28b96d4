// Task cold start: milliseconds from spawning `node index.js` to its first line of output, for
// each bundled task under both agent handlers, beside the floor of a bare `node -e` that prints
// one line (the ratio is what the bundle adds). Median of 15 runs each.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { distTasks, type NodeRuntime, nodeRuntimes, repoRoot } from '../../test/support/paths';

const RUNS = 15;

function firstLineMs(node: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(node, args, {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { PATH: process.env.PATH, AGENT_TEMPDIRECTORY: '/tmp' },
    });
    let done = false;
    child.stdout.on('data', () => {
      if (done) return;
      done = true;
      resolve(Number(process.hrtime.bigint() - started) / 1e6);
    });
    child.on('error', reject);
    child.on('close', () => done || reject(new Error('no output')));
  });
}

async function median(node: string, args: string[]): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) samples.push(await firstLineMs(node, args));
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

async function main() {
  const tasks = fs
    .readdirSync(distTasks)
    .filter((t) => fs.existsSync(path.join(distTasks, t, 'index.js')))
    .sort();
  const rows: string[] = [];
  for (const runtime of Object.keys(nodeRuntimes) as NodeRuntime[]) {
    const node = nodeRuntimes[runtime];
    const floor = await median(node, ['-e', 'console.log(1)']);
    rows.push(`| (bare node -e) | ${runtime} | ${floor.toFixed(0)} | 1.00 | |`);
    for (const task of tasks) {
      const script = path.join(distTasks, task, 'index.js');
      const ms = await median(node, [script]);
      rows.push(
        `| ${task} | ${runtime} | ${ms.toFixed(0)} | ${(ms / floor).toFixed(2)} | ${(fs.statSync(script).size / 1024).toFixed(0)} |`,
      );
    }
  }
  const report = [
    '# Task cold start',
    '',
    `Milliseconds from spawning the bundled task to its first line of output, median of ${RUNS}; ratio against a bare \`node -e\` on the same runtime, measured in the same run. ${new Date().toISOString()}, ${process.platform} ${process.arch}.`,
    '',
    '| Task | Runtime | ms to first line | ÷ bare node | bundle KiB |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
  fs.mkdirSync(path.join(repoRoot, 'bench', 'reports'), { recursive: true });
  fs.writeFileSync(path.join(repoRoot, 'bench', 'reports', 'startup.md'), report);
  console.log(report);
}

void main();
