// The baselines of bench/scoring, run as child processes:
//   bare MODEL PORT   a bare node:http server: JSON body {"data": [[...]]} → one session.run per request
//   raw MODEL SECONDS session.run on one row in a loop, no HTTP at all: the limit; prints JSON stats
import * as http from 'node:http';
import { createRequire } from 'node:module';
import * as path from 'node:path';

/** The part of onnxruntime-node used here (it is installed in sample-app/, not at the root). */
interface OrtTensor {
  data: ArrayLike<number | bigint>;
  dims: readonly number[];
}
interface OrtSession {
  inputNames: readonly string[];
  inputMetadata: ReadonlyArray<{ shape?: ReadonlyArray<number | string> }>;
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
}
interface Ort {
  InferenceSession: { create(path: string): Promise<OrtSession> };
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => OrtTensor;
}

const ort = createRequire(path.resolve(__dirname, '..', '..', 'sample-app', 'package.json'))('onnxruntime-node') as Ort;

async function bare(modelPath: string, port: number): Promise<void> {
  const session = await ort.InferenceSession.create(modelPath);
  const [input] = session.inputNames;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => void answer());
    const answer = async () => {
      try {
        const rows = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: number[][] }).data;
        const tensor = new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, rows[0].length]);
        const results = await session.run({ [input]: tensor });
        const outputs: Record<string, unknown> = {};
        for (const [name, value] of Object.entries(results)) {
          const flat = Array.from(value.data, Number);
          const width = value.dims.length > 1 ? Number(value.dims[1]) : 0;
          outputs[name] = width ? rows.map((_, i) => flat.slice(i * width, (i + 1) * width)) : flat;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ outputs }));
      } catch (error) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: (error as Error).message }));
      }
    };
  });
  server.listen(port, '127.0.0.1', () => console.log(`listening ${(server.address() as { port: number }).port}`));
}

async function raw(modelPath: string, seconds: number): Promise<void> {
  const session = await ort.InferenceSession.create(modelPath);
  const [input] = session.inputNames;
  const width = Number(session.inputMetadata[0].shape?.[1]);
  const row = Float32Array.from({ length: width }, (_, i) => (i % 7) / 7);
  const feeds = { [input]: new ort.Tensor('float32', row, [1, width]) };
  for (let i = 0; i < 200; i++) await session.run(feeds);
  const latencies: number[] = [];
  const started = process.hrtime.bigint();
  const end = started + BigInt(Math.round(seconds * 1e9));
  let now = started;
  while (now < end) {
    const before = now;
    await session.run(feeds);
    now = process.hrtime.bigint();
    latencies.push(Number(now - before) / 1e6);
  }
  latencies.sort((a, b) => a - b);
  const elapsed = Number(now - started) / 1e9;
  console.log(
    JSON.stringify({
      runsPerSecond: latencies.length / elapsed,
      p50: latencies[Math.floor(latencies.length * 0.5)],
      p99: latencies[Math.floor(latencies.length * 0.99)],
    }),
  );
}

const [mode, modelPath, arg] = process.argv.slice(2);
if (mode === 'bare') void bare(modelPath, Number(arg));
else if (mode === 'raw') void raw(modelPath, Number(arg));
else {
  console.error('usage: baseline.ts bare MODEL PORT | raw MODEL SECONDS');
  process.exit(2);
}
