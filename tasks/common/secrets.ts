import { Writable } from 'node:stream';

import * as tl from 'azure-pipelines-task-lib/task';

/**
 * Every credential the task handles passes through here: the agent masks it in the log
 * (tl.setSecret), and scrub() removes it from messages we build ourselves, such as SDK errors.
 */
const known = new Set<string>();

export function registerSecret<T extends string | undefined>(value: T): T {
  if (!value || value.length < 3 || known.has(value)) return value;
  known.add(value);
  if (/[\r\n]/.test(value)) {
    // The agent takes single-line secrets only. A PEM key or certificate is masked line by line;
    // short lines (BEGIN/END markers, blank) carry nothing secret.
    for (const line of value.split(/\r?\n/).map((l) => l.trim())) {
      if (line.length >= 20 && !known.has(line)) registerSecret(line);
    }
    return value;
  }
  tl.setSecret(value);
  // A secret inside a URL is often percent-encoded there; mask that spelling too.
  const encoded = encodeURIComponent(value);
  if (encoded !== value) {
    known.add(encoded);
    tl.setSecret(encoded);
  }
  return value;
}

const discard = new Writable({ write: (_chunk, _enc, done) => done() });

/**
 * task-lib debug-logs the value of every input and endpoint parameter it reads
 * ("<id> auth param password = ..."). Secret values are read through this, with task-lib's
 * output stream pointed at nothing for the length of the read, and registered at once.
 */
export function readSecretQuietly(
  read: () => string | undefined,
  register: (value: string) => void = registerSecret,
): string | undefined {
  tl.setStdStream(discard);
  let value: string | undefined;
  try {
    value = read() || undefined;
  } finally {
    tl.setStdStream(process.stdout);
  }
  if (value) register(value);
  return value;
}

/** Query parameters that carry credentials in URLs (SAS signatures, tokens). */
const SECRET_QUERY =
  /([?&](?:sig|signature|token|access_token|code|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=)[^&#\s"']+/gi;
const BEARER = /(\bBearer\s+)[A-Za-z0-9\-._~+/]+=*/g;
const ACCOUNT_KEY = /((?:AccountKey|SharedAccessSignature|password|secret)\s*[=:]\s*)[^;&\s"']+/gi;

export function scrub(text: string): string {
  let out = text;
  for (const secret of [...known].sort((a, b) => b.length - a.length)) {
    out = out.split(secret).join('***');
  }
  return out.replace(SECRET_QUERY, '$1***').replace(BEARER, '$1***').replace(ACCOUNT_KEY, '$1***');
}

/** For tests: forget what was registered. */
export function clearSecretsForTest(): void {
  known.clear();
}
