/**
 * @kubernetes/client-node reaches tr46 (through node-fetch), which requires Node's built-in
 * `punycode`. Node 22+ prints DEP0040 for that on stderr, which says nothing a pipeline user can
 * act on. Only that one warning is dropped; import this before client-node so it is in place first.
 */
const emitWarning = process.emitWarning.bind(process);

process.emitWarning = function emitWarningExceptPunycode(warning: string | Error, ...rest: unknown[]): void {
  const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: string }).code : rest[1];
  if (code === 'DEP0040') return;
  (emitWarning as (...args: unknown[]) => void)(warning, ...rest);
};

export {};
