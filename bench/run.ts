// `npm run bench`: runs each benchmark (bench/<area>/run.ts) one after another — never side by
// side, since each compares against a baseline in the same run and needs the machine to itself —
// and lists the reports they wrote under bench/reports/.
//   npm run bench                 all of them
//   npm run bench -- fetch bake   only these
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const benchDir = __dirname;
const wanted = process.argv.slice(2);
const areas = fs
  .readdirSync(benchDir, { withFileTypes: true })
  .filter((d) => d.isDirectory() && fs.existsSync(path.join(benchDir, d.name, 'run.ts')))
  .map((d) => d.name)
  .filter((name) => wanted.length === 0 || wanted.includes(name))
  .sort();

if (areas.length === 0) {
  console.error(`No benchmark matches ${wanted.join(', ') || '(any)'}.`);
  process.exit(1);
}
let failed = 0;
for (const area of areas) {
  console.log(`\n=== bench/${area}`);
  const started = Date.now();
  const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(benchDir, area, 'run.ts')], {
    stdio: 'inherit',
    cwd: path.resolve(benchDir, '..'),
  });
  console.log(
    `=== bench/${area}: ${result.status === 0 ? 'done' : `FAILED (exit ${result.status ?? result.signal})`} in ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  if (result.status !== 0) failed++;
}
const reports = fs.readdirSync(path.join(benchDir, 'reports')).filter((f) => f.endsWith('.md'));
console.log(`\nReports: ${reports.map((r) => `bench/reports/${r}`).join(', ')}`);
process.exit(failed ? 1 : 0);
