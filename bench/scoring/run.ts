// Scoring throughput and latency: (a) the sample app, (b) a bare node:http server calling the same ORT
// session once per request, (c) raw session.run in a loop (the limit), with batch-1 requests from
// autocannon at concurrency 1, 16 and 64, for two models made by the app's make-model script: the small
// sample model (HTTP overhead dominates) and a heavier MLP where micro-batching pays.
// Writes bench/reports/scoring.md. Run: node --import tsx bench/scoring/run.ts
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';

import { repoRoot } from '../../test/support/paths';
import { freePort } from '../../test/support/ports';

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
const autocannon = createRequire(__filename)('autocannon') as (options: object) => Promise<AutocannonResult>;

const appDir = path.join(repoRoot, 'sample-app');
const workDir = path.join(repoRoot, 'bench', '.work', 'scoring');
const CONCURRENCIES = [1, 16, 64];
const WARMUP_SECONDS = 1;
const MEASURE_SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
// Servers take turns, in a rotating order, round after round, and each figure is the median of its
// rounds: the machine is shared, and a burst of other work should not land on one server only.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

interface ModelCase {
  label: string;
  dir: string;
  width: number;
}

interface Server {
  name: string;
  url: string;
  child: ChildProcess;
}

interface Row {
  model: string;
  server: string;
  concurrency: number;
  rps: number;
  p50: number;
  p99: number;
}

async function waitFor(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: server exited with ${child.exitCode}`);
    if (
      (await fetch(url).then(
        (r) => r.status,
        () => 0,
      )) === 200
    )
      return;
    if (Date.now() > deadline) throw new Error(`${url} never answered 200`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function startApp(model: ModelCase, name: string, env: Record<string, string>): Promise<Server> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(appDir, 'dist', 'main.js')], {
    env: { PATH: process.env.PATH ?? '', MODEL_PATH: model.dir, PORT: String(port), HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/readyz`, child);
  return { name, url: `${url}/score`, child };
}

async function startBare(model: ModelCase): Promise<Server> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(__dirname, 'baseline.ts'), 'bare', path.join(model.dir, 'model.onnx'), String(port)],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const url = `http://127.0.0.1:${port}/score`;
  const body = JSON.stringify({ data: [Array.from({ length: model.width }, () => 0.5)] });
  const deadline = Date.now() + 60_000;
  while (
    (await fetch(url, { method: 'POST', body }).then(
      (r) => r.status,
      () => 0,
    )) !== 200
  ) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('the bare server did not start');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { name: 'bare node:http', url, child };
}

function stop(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (server.child.exitCode !== null) return resolve();
    server.child.once('exit', () => resolve());
    server.child.kill('SIGTERM');
  });
}

async function load(url: string, width: number, connections: number, seconds: number): Promise<AutocannonResult> {
  const row = Array.from({ length: width }, (_, i) => Math.round(((i * 37) % 100) / 10) / 10);
  return autocannon({
    url,
    connections,
    duration: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ data: [row] }),
  });
}

async function measure(server: Server, model: ModelCase, concurrency: number): Promise<Row> {
  await load(server.url, model.width, concurrency, WARMUP_SECONDS);
  const result = await load(server.url, model.width, concurrency, MEASURE_SECONDS);
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(
      `${server.name} at c=${concurrency}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`,
    );
  }
  const row = {
    model: model.label,
    server: server.name,
    concurrency,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
  };
  console.log(
    `${model.label.padEnd(14)} ${server.name.padEnd(28)} c=${String(concurrency).padEnd(3)} ${row.rps.toFixed(0).padStart(7)} req/s  p50 ${row.p50.toFixed(2)} ms  p99 ${row.p99.toFixed(2)} ms`,
  );
  return row;
}

function rawLimit(model: ModelCase): { runsPerSecond: number; p50: number; p99: number } {
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', path.join(__dirname, 'baseline.ts'), 'raw', path.join(model.dir, 'model.onnx'), '4'],
    { cwd: repoRoot, encoding: 'utf8' },
  );
  if (result.status !== 0) throw new Error(`raw session.run failed: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}');
}

function makeModels(): ModelCase[] {
  const makeModel = (args: string[]) => {
    const result = spawnSync(
      process.execPath,
      ['--import', 'tsx', path.join(appDir, 'scripts', 'make-model.ts'), ...args],
      { cwd: appDir, stdio: 'inherit' },
    );
    if (result.status !== 0) throw new Error('make-model failed');
  };
  const small = path.join(workDir, 'sample-classifier');
  const heavy = path.join(workDir, 'heavy-mlp');
  makeModel(['--out', small]);
  makeModel(['--out', heavy, '--name', 'heavy-mlp', '--inputs', '64', '--hidden', '1024,1024,1024', '--classes', '8']);
  return [
    { label: 'small (4→16→3)', dir: small, width: 4 },
    {
      label: `heavy (64→3×1024→8, ${(fs.statSync(path.join(heavy, 'model.onnx')).size / 1e6).toFixed(1)} MB)`,
      dir: heavy,
      width: 64,
    },
  ];
}

const fmt = (n: number, digits = 2) => n.toFixed(digits);

async function main(): Promise<void> {
  fs.mkdirSync(workDir, { recursive: true });
  const loadBefore = os.loadavg()[0];
  const build = spawnSync('npm', ['run', 'build'], { cwd: appDir, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('sample-app build failed');
  const models = makeModels();
  const rows: Row[] = [];
  const limits: Record<string, { runsPerSecond: number; p50: number; p99: number }> = {};
  for (const model of models) {
    limits[model.label] = rawLimit(model);
    console.log(
      `${model.label}: raw session.run ${limits[model.label].runsPerSecond.toFixed(0)} runs/s, p50 ${(limits[model.label].p50 * 1000).toFixed(0)} µs`,
    );
    const servers = [
      await startBare(model),
      await startApp(model, 'app (micro-batching on)', {}),
      await startApp(model, 'app (micro-batching off)', { BATCHING: 'false' }),
    ];
    try {
      // JIT and onnxruntime's thread pools warm up once per server before any round counts.
      for (const server of servers) {
        await load(server.url, model.width, 16, 2);
        await load(server.url, model.width, 1, 1);
      }
      const samples = new Map<string, Row[]>();
      for (let round = 0; round < ROUNDS; round++) {
        for (const concurrency of CONCURRENCIES) {
          // Each round starts with another server, so no server always follows the same one.
          const order = servers.map((_, i) => servers[(i + round) % servers.length]);
          for (const server of order) {
            const row = await measure(server, model, concurrency);
            const key = `${server.name}|${concurrency}`;
            samples.set(key, [...(samples.get(key) ?? []), row]);
          }
        }
      }
      for (const runs of samples.values()) {
        const middle = <K extends 'rps' | 'p50' | 'p99'>(key: K) =>
          runs.map((r) => r[key]).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
        rows.push({ ...runs[0], rps: middle('rps'), p50: middle('p50'), p99: middle('p99') });
      }
    } finally {
      for (const server of servers) await stop(server);
    }
  }

  const find = (model: string, server: string, concurrency: number) =>
    rows.find((r) => r.model === model && r.server.startsWith(server) && r.concurrency === concurrency)!;
  const lines: string[] = [
    '# Scoring service: throughput and latency',
    '',
    `${new Date().toISOString()}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.versions.node}, ${process.platform} ${process.arch}; ` +
      `load average ${loadBefore.toFixed(1)} at the start and ${os.loadavg()[0].toFixed(1)} at the end (other work on the machine skews every figure; compare rows of one run only). ` +
      `Batch-1 POST /score requests from autocannon (on the same machine) for ${MEASURE_SECONDS} s after ${WARMUP_SECONDS} s of warm-up, one server at a time (each server first warmed for 3 s); ` +
      `${ROUNDS} rounds with the servers taking turns, each figure the median of its rounds. ` +
      'autocannon reports latency in whole milliseconds, so "mean µs" (concurrency ÷ req/s, Little\'s law) gives the finer picture. ' +
      'The app runs with its defaults: signature validation, Prometheus metrics, request ids, no per-request access log line. ' +
      'The bare server parses the JSON, builds the tensor, calls session.run once per request and answers JSON. ' +
      '"Raw" is session.run on one row in a loop with no HTTP: the limit. Both models come from `sample-app/scripts/make-model.ts`.',
    '',
  ];
  for (const model of models) {
    const limit = limits[model.label];
    lines.push(
      `## ${model.label}`,
      '',
      `Raw session.run (batch 1): ${fmt(limit.runsPerSecond, 0)} runs/s, p50 ${fmt(limit.p50 * 1000, 0)} µs, p99 ${fmt(limit.p99 * 1000, 0)} µs.`,
      '',
    );
    lines.push(
      '| concurrency | server | req/s | mean µs | p50 ms | p99 ms | req/s ÷ bare | req/s ÷ raw |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const concurrency of CONCURRENCIES) {
      const bare = find(model.label, 'bare', concurrency);
      for (const row of rows.filter((r) => r.model === model.label && r.concurrency === concurrency)) {
        lines.push(
          `| ${concurrency} | ${row.server} | ${fmt(row.rps, 0)} | ${fmt((concurrency / row.rps) * 1e6, 0)} | ${fmt(row.p50, 0)} | ${fmt(row.p99, 0)} | ${fmt(row.rps / bare.rps)} | ${fmt(row.rps / limit.runsPerSecond)} |`,
        );
      }
    }
    lines.push('');
  }
  const [small, heavy] = models.map((m) => m.label);
  const smallRatio = find(small, 'app (micro-batching on)', 1).rps / find(small, 'bare', 1).rps;
  const heavyApp = find(heavy, 'app (micro-batching on)', 64);
  const heavyBare = find(heavy, 'bare', 64);
  lines.push(
    '## Targets',
    '',
    '| target | measured | met |',
    '| --- | --- | --- |',
    `| small model, c=1: app ÷ bare ≥ 0.85 | ${fmt(smallRatio)} | ${smallRatio >= 0.85 ? 'yes' : 'no'} |`,
    `| heavy model, c=64, micro-batching on: app ≥ 2 × bare req/s | ${fmt(heavyApp.rps / heavyBare.rps)} × | ${heavyApp.rps >= 2 * heavyBare.rps ? 'yes' : 'no'} |`,
    `| heavy model, c=64: app p99 ≤ bare p99 | ${fmt(heavyApp.p99)} ms vs ${fmt(heavyBare.p99)} ms | ${heavyApp.p99 <= heavyBare.p99 ? 'yes' : 'no'} |`,
    '',
  );
  const report = lines.join('\n');
  fs.mkdirSync(path.join(repoRoot, 'bench', 'reports'), { recursive: true });
  fs.writeFileSync(path.join(repoRoot, 'bench', 'reports', 'scoring.md'), report);
  console.log(`\n${report}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
