import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { distTasks, makeTempDir, type NodeRuntime, nodeRuntimes } from './paths';

/**
 * Runs a bundled task the way the agent does: `node index.js` in a child process, inputs as
 * INPUT_*, service connections as ENDPOINT_*, pipeline variables as their env names, secret
 * variables as SECRET_*; then parses every ##vso[...] command it printed.
 */

export interface ServiceEndpoint {
  id: string;
  url?: string;
  scheme: string;
  /** Authorization parameters, e.g. { username, password } or { serviceprincipalid, tenantid }. */
  auth?: Record<string, string>;
  data?: Record<string, string>;
}

export interface RunTaskOptions {
  inputs?: Record<string, string | number | boolean | undefined>;
  endpoints?: ServiceEndpoint[];
  /** Pipeline variables by their names, e.g. { 'Build.BuildId': '42' }. */
  variables?: Record<string, string>;
  /** Secret pipeline variables: passed as SECRET_* and checked absent from the output. */
  secretVariables?: Record<string, string>;
  node?: NodeRuntime;
  cwd?: string;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** Receives each stdout line as it comes, e.g. to watch progress. */
  onLine?: (line: string) => void;
}

export interface VsoCommand {
  area: string;
  event: string;
  properties: Record<string, string>;
  message: string;
}

export interface TaskRun {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** Lines that are not ##vso commands: what a user reads in the log. */
  logLines: string[];
  commands: VsoCommand[];
  result?: 'Succeeded' | 'SucceededWithIssues' | 'Failed' | 'Cancelled' | 'Skipped';
  message: string;
  /** Output variables (isOutput=true). */
  outputs: Record<string, string>;
  /** Every variable set, outputs included. */
  variables: Record<string, string>;
  secrets: string[];
  issues: Array<{ type: string; message: string }>;
  summaries: string[];
  progress: Array<{ percent: number; label: string }>;
  durationMs: number;
}

const VSO = /^##vso\[([a-z]+)\.([a-z]+)(?:\s+([^\]]*))?\](.*)$/i;

// task-lib escapes '%' as %AZP25, and CR, LF, ';' and ']' by their codes.
function unescapeProperty(value: string): string {
  return unescapeData(value.replace(/%3B/gi, ';').replace(/%5D/gi, ']'));
}

function unescapeData(value: string): string {
  return value
    .replace(/%0D/gi, '\r')
    .replace(/%0A/gi, '\n')
    .replace(/%AZP25/g, '%');
}

export function parseVsoCommand(line: string): VsoCommand | undefined {
  const m = VSO.exec(line.trim());
  if (!m) return undefined;
  const properties: Record<string, string> = {};
  for (const part of (m[3] ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) properties[part.slice(0, eq).trim()] = unescapeProperty(part.slice(eq + 1));
  }
  return { area: m[1].toLowerCase(), event: m[2].toLowerCase(), properties, message: unescapeData(m[4]) };
}

/** Agent-side environment for one run; exported so tests of the demo can reuse it. */
export function agentEnvironment(opts: RunTaskOptions, tempDir: string): Record<string, string> {
  const env: Record<string, string> = {};
  // Keep only what a real agent passes through: PATH and HOME, not the test runner's settings.
  for (const key of ['PATH', 'HOME', 'LANG', 'TMPDIR', 'NODE_EXTRA_CA_CERTS']) {
    if (process.env[key]) env[key] = process.env[key]!;
  }
  Object.assign(env, {
    AGENT_TEMPDIRECTORY: tempDir,
    AGENT_WORKFOLDER: tempDir,
    AGENT_VERSION: '4.258.1',
    AGENT_OS: 'Linux',
    SYSTEM_DEFAULTWORKINGDIRECTORY: opts.cwd ?? tempDir,
    SYSTEM_TEAMFOUNDATIONCOLLECTIONURI: 'https://dev.azure.com/contoso/',
    SYSTEM_TEAMPROJECT: 'ml-platform',
    SYSTEM_TEAMPROJECTID: '6f1c2b0e-0000-4000-8000-000000000001',
    SYSTEM_HOSTTYPE: 'build',
    SYSTEM_CULTURE: 'en-US',
    BUILD_BUILDID: '42',
    BUILD_BUILDNUMBER: '20261125.1',
    BUILD_DEFINITIONNAME: 'scoring-ci',
    BUILD_SOURCEVERSION: '0123456789abcdef0123456789abcdef01234567',
    BUILD_REPOSITORY_URI: 'https://github.com/contoso/scoring',
  });
  for (const [name, value] of Object.entries(opts.variables ?? {})) env[name.replace(/\./g, '_').toUpperCase()] = value;
  for (const [name, value] of Object.entries(opts.secretVariables ?? {}))
    env[`SECRET_${name.replace(/\./g, '_').toUpperCase()}`] = value;
  for (const [name, value] of Object.entries(opts.inputs ?? {})) {
    if (value !== undefined) env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = String(value);
  }
  for (const ep of opts.endpoints ?? []) {
    const id = ep.id;
    if (ep.url !== undefined) env[`ENDPOINT_URL_${id}`] = ep.url;
    env[`ENDPOINT_AUTH_${id}`] = JSON.stringify({ parameters: ep.auth ?? {}, scheme: ep.scheme });
    env[`ENDPOINT_AUTH_SCHEME_${id}`] = ep.scheme;
    for (const [k, v] of Object.entries(ep.auth ?? {})) env[`ENDPOINT_AUTH_PARAMETER_${id}_${k.toUpperCase()}`] = v;
    for (const [k, v] of Object.entries(ep.data ?? {})) env[`ENDPOINT_DATA_${id}_${k.toUpperCase()}`] = v;
  }
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export async function runTask(taskName: string, opts: RunTaskOptions = {}): Promise<TaskRun> {
  const script = path.join(distTasks, taskName, 'index.js');
  if (!fs.existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` first`);
  const tempDir = makeTempDir(`agent-${taskName}-`);
  const env = agentEnvironment(opts, tempDir);
  const started = Date.now();
  const child = spawn(nodeRuntimes[opts.node ?? 'node20'], [script], {
    cwd: opts.cwd ?? tempDir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let pending = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (opts.onLine) {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      lines.forEach((l) => opts.onLine!(l));
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `${taskName} did not finish within ${timeoutMs} ms. Output so far:\n${stdout.slice(-4000)}\n${stderr.slice(-2000)}`,
        ),
      );
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  const run = parseTaskOutput(stdout, stderr, exitCode, Date.now() - started);
  // Summaries live in the agent temp folder: read them before it goes.
  run.summaries = run.summaries.map((file) =>
    fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : `(missing summary file ${file})`,
  );
  fs.rmSync(tempDir, { recursive: true, force: true });
  assertNoSecretsLeaked(
    run,
    Object.values(opts.secretVariables ?? {}).concat(secretsOfEndpoints(opts.endpoints ?? [])),
  );
  return run;
}

const SECRET_AUTH_KEYS = /password|key|secret|token|certificate|kubeconfig|apitoken/i;

function secretsOfEndpoints(endpoints: ServiceEndpoint[]): string[] {
  return endpoints.flatMap((ep) =>
    Object.entries(ep.auth ?? {})
      .filter(([k]) => SECRET_AUTH_KEYS.test(k) && !/type$/i.test(k))
      .map(([, v]) => v),
  );
}

export function parseTaskOutput(stdout: string, stderr: string, exitCode: number | null, durationMs = 0): TaskRun {
  const run: TaskRun = {
    exitCode,
    stdout,
    stderr,
    logLines: [],
    commands: [],
    message: '',
    outputs: {},
    variables: {},
    secrets: [],
    issues: [],
    summaries: [],
    progress: [],
    durationMs,
  };
  for (const line of stdout.split(/\r?\n/)) {
    const cmd = parseVsoCommand(line);
    if (!cmd) {
      if (line.trim()) run.logLines.push(line);
      continue;
    }
    run.commands.push(cmd);
    const key = `${cmd.area}.${cmd.event}`;
    if (key === 'task.complete') {
      run.result = cmd.properties.result as TaskRun['result'];
      run.message = cmd.message;
    } else if (key === 'task.setvariable') {
      run.variables[cmd.properties.variable] = cmd.message;
      if (cmd.properties.isOutput === 'true') run.outputs[cmd.properties.variable] = cmd.message;
    } else if (key === 'task.setsecret') {
      run.secrets.push(cmd.message);
    } else if (key === 'task.issue' || key === 'task.logissue') {
      run.issues.push({ type: cmd.properties.type, message: cmd.message });
    } else if (key === 'task.uploadsummary') {
      run.summaries.push(cmd.message);
    } else if (key === 'task.setprogress') {
      run.progress.push({ percent: Number(cmd.properties.value), label: cmd.message });
    }
  }
  return run;
}

/**
 * Fails when any secret appears in the output outside the setsecret command that registers it
 * (the agent would mask it, but we never rely on that).
 */
export function assertNoSecretsLeaked(run: TaskRun, sentinels: string[] = []): void {
  const text = (run.stdout + '\n' + run.stderr)
    .split(/\r?\n/)
    .filter((l) => !l.startsWith('##vso[task.setsecret]'))
    .join('\n');
  for (const secret of new Set([...run.secrets, ...sentinels])) {
    if (secret.length < 6) continue;
    if (text.includes(secret)) {
      const at = text.indexOf(secret);
      const context = text.slice(Math.max(0, at - 80), at).replace(secret, '<SECRET>');
      throw new Error(
        `a secret (${secret.length} chars) leaked into the task output after: ${JSON.stringify(context)}`,
      );
    }
  }
}

/** Short description of a run for assertion messages. */
export function describeRun(run: TaskRun): string {
  return `result=${run.result} exit=${run.exitCode} message=${JSON.stringify(run.message)}\n--- log ---\n${run.logLines.slice(-40).join('\n')}\n--- stderr ---\n${run.stderr.slice(-2000)}`;
}
