// Every setting of the service, read from the environment in this one place and validated at start-up:
// a bad value stops the service with a message naming the variable and what to fix.

export interface BatchingConfig {
  enabled: boolean;
  /** Rows in one joined session.run at most. */
  maxBatchRows: number;
  /** How long a queued request may wait for more requests to join while more are known to be arriving. */
  maxWaitMicros: number;
}

export interface AppConfig {
  modelPath: string;
  modelName?: string;
  modelVersion?: string;
  modelSha256?: string;
  host: string;
  port: number;
  bodyLimitBytes: number;
  maxRowsPerRequest: number;
  batching: BatchingConfig;
  apiKeys: string[];
  apiKeysFile?: string;
  /** How often API_KEYS_FILE is read again, so a rotated Secret takes effect without a restart. */
  apiKeysReloadMillis: number;
  logLevel: string;
  accessLog: boolean;
  shutdownGraceMillis: number;
  shutdownDelayMillis: number;
  intraOpThreads: number;
  interOpThreads: number;
  imageLabels: Record<string, string>;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const MIN_API_KEY_LENGTH = 16;

/** Reads env into a typed config, collecting every problem before failing so one restart fixes them all. */
export function loadConfig(env: NodeJS.ProcessEnv): AppConfig {
  const problems: string[] = [];
  const text = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === '' ? undefined : value;
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^-?\d+$/.test(raw) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return value;
  };
  const bytes = (name: string, fallback: number): number => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    const match = /^(\d+)\s*(b|kb|kib|k|mb|mib|m)?$/i.exec(raw);
    const unit = match?.[2]?.toLowerCase() ?? 'b';
    const factor = unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 * 1024 : 1;
    const value = match ? Number(match[1]) * factor : NaN;
    if (!Number.isSafeInteger(value) || value < 1024 || value > 1024 * 1024 * 1024) {
      problems.push(`${name} must be a size from 1kb to 1024mb, such as 1048576, 512kb or 4mb (got "${raw}")`);
      return fallback;
    }
    return value;
  };
  const flag = (name: string, fallback: boolean): boolean => {
    const raw = text(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
    if (['0', 'false', 'no', 'off'].includes(raw)) return false;
    problems.push(`${name} must be true or false (got "${raw}")`);
    return fallback;
  };

  const modelPath = text('MODEL_PATH');
  if (!modelPath) problems.push('MODEL_PATH is required: the path of an .onnx file, or of a folder holding model.onnx');

  const modelSha256 = text('MODEL_SHA256')
    ?.toLowerCase()
    .replace(/^sha256:/, '');
  if (modelSha256 !== undefined && !/^[0-9a-f]{64}$/.test(modelSha256)) {
    problems.push(`MODEL_SHA256 must be 64 hex digits, optionally prefixed "sha256:" (got "${text('MODEL_SHA256')}")`);
  }

  const logLevel = text('LOG_LEVEL')?.toLowerCase() ?? 'info';
  if (!LOG_LEVELS.includes(logLevel))
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`);

  const apiKeys = (text('API_KEYS') ?? '')
    .split(',')
    .map((key) => key.trim())
    .filter((key) => key !== '');
  if (apiKeys.some((key) => key.length < MIN_API_KEY_LENGTH)) {
    problems.push(`API_KEYS: every key must have at least ${MIN_API_KEY_LENGTH} characters (keys are comma-separated)`);
  }

  const config: AppConfig = {
    modelPath: modelPath ?? '',
    modelName: text('MODEL_NAME'),
    modelVersion: text('MODEL_VERSION'),
    modelSha256,
    host: text('HOST') ?? '0.0.0.0',
    port: integer('PORT', 8080, 0, 65535),
    bodyLimitBytes: bytes('BODY_LIMIT', 1024 * 1024),
    maxRowsPerRequest: integer('MAX_ROWS_PER_REQUEST', 1024, 1, 1_000_000),
    batching: {
      enabled: flag('BATCHING', true),
      maxBatchRows: integer('BATCH_MAX_ROWS', 64, 1, 1_000_000),
      maxWaitMicros: integer('BATCH_MAX_WAIT_US', 1000, 0, 1_000_000),
    },
    apiKeys,
    apiKeysFile: text('API_KEYS_FILE'),
    apiKeysReloadMillis: integer('API_KEYS_RELOAD_MS', 10_000, 100, 3_600_000),
    logLevel,
    // One log line per request costs ~10% of small-model throughput; ingress and /metrics usually cover it.
    accessLog: flag('ACCESS_LOG', false),
    shutdownGraceMillis: integer('SHUTDOWN_GRACE_MS', 25_000, 0, 3_600_000),
    shutdownDelayMillis: integer('SHUTDOWN_DELAY_MS', 0, 0, 3_600_000),
    intraOpThreads: integer('ORT_INTRA_OP_THREADS', 0, 0, 1024),
    interOpThreads: integer('ORT_INTER_OP_THREADS', 0, 0, 1024),
    imageLabels: readImageLabels(env, problems),
  };
  if (config.shutdownDelayMillis >= config.shutdownGraceMillis && config.shutdownGraceMillis > 0) {
    problems.push(
      `SHUTDOWN_DELAY_MS (${config.shutdownDelayMillis}) must be less than SHUTDOWN_GRACE_MS (${config.shutdownGraceMillis})`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * Image labels, shown by GET /model: IMAGE_LABELS holds a JSON object of string labels, and each
 * OCI_IMAGE_<KEY> variable adds org.opencontainers.image.<key> (lower case, "_" read as "."), e.g.
 * OCI_IMAGE_REVISION → org.opencontainers.image.revision. IMAGE_LABELS wins on a clash.
 */
function readImageLabels(env: NodeJS.ProcessEnv, problems: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith('OCI_IMAGE_') && value !== undefined && name.length > 'OCI_IMAGE_'.length) {
      labels[`org.opencontainers.image.${name.slice('OCI_IMAGE_'.length).toLowerCase().replaceAll('_', '.')}`] = value;
    }
  }
  const raw = env.IMAGE_LABELS?.trim();
  if (raw) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = undefined;
    }
    const isStringMap =
      typeof parsed === 'object' &&
      parsed !== null &&
      !Array.isArray(parsed) &&
      Object.values(parsed).every((value) => typeof value === 'string');
    if (isStringMap) Object.assign(labels, parsed);
    else
      problems.push(
        'IMAGE_LABELS must be a JSON object whose values are strings, e.g. {"org.opencontainers.image.revision":"abc123"}',
      );
  }
  return labels;
}
