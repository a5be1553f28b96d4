// Starts the built service (dist/main.js) as its own process on a free port, as a deployment runs it,
// and reads its JSON log lines.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const APP_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SAMPLE_MODEL_DIR = path.join(APP_ROOT, 'models', 'sample-classifier');

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export interface RunningApp {
  url: string;
  port: number;
  process: ChildProcess;
  logs: LogLine[];
  /** Raw stdout+stderr, for messages that are not JSON. */
  output: () => string;
  exited: Promise<number | null>;
  stop: () => Promise<number | null>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Wait for /readyz to answer 200 (default), or only for the port to open. */
  waitForReady?: boolean;
  timeoutMillis?: number;
}

function collect(child: ChildProcess): { logs: LogLine[]; output: () => string } {
  const logs: LogLine[] = [];
  let raw = '';
  let pending = '';
  const onData = (chunk: Buffer) => {
    raw += chunk.toString('utf8');
    pending += chunk.toString('utf8');
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        // not JSON (e.g. a Node warning): kept in raw output only
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return { logs, output: () => raw };
}

/** Runs dist/main.js to its exit (for start-up failures); resolves with the exit code and output. */
export async function runToExit(
  env: Record<string, string>,
  timeoutMillis = 20_000,
): Promise<{ code: number | null; logs: LogLine[]; output: string }> {
  const child = spawn(process.execPath, [path.join(APP_ROOT, 'dist', 'main.js')], {
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { logs, output } = collect(child);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMillis);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, logs, output: output() };
}

export async function startApp(options: StartOptions = {}): Promise<RunningApp> {
  const child = spawn(process.execPath, [path.join(APP_ROOT, 'dist', 'main.js')], {
    env: {
      PATH: process.env.PATH ?? '',
      MODEL_PATH: SAMPLE_MODEL_DIR,
      PORT: '0',
      HOST: '127.0.0.1',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { logs, output } = collect(child);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  const deadline = Date.now() + (options.timeoutMillis ?? 30_000);
  let port: number | undefined;
  while (port === undefined) {
    if (exitCode !== undefined) throw new Error(`the app exited with ${exitCode} before listening:\n${output()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the app did not listen in time:\n${output()}`);
    }
    const line = logs.find((l) => l.msg.startsWith('listening'));
    if (line) port = line.port as number;
    else await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const url = `http://127.0.0.1:${port}`;
  if (options.waitForReady !== false) {
    for (;;) {
      if (exitCode !== undefined) throw new Error(`the app exited with ${exitCode} before ready:\n${output()}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`the app was not ready in time:\n${output()}`);
      }
      const ready = await fetch(`${url}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ready) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  const stop = async () => {
    if (exitCode === undefined) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  return { url, port, process: child, logs, output, exited, stop };
}

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: the text itself
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

export async function getJson(url: string, headers: Record<string, string> = {}): Promise<any> {
  return (await fetch(url, { headers })).json();
}
