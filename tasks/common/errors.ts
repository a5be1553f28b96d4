/**
 * Errors the user can act on. The run wrapper prints their message as one line
 * (no stack trace unless system.debug is on); anything else is a bug and shows its stack.
 */
export class TaskError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TaskError';
  }
}

/** A task input is missing or wrong. The message always names the input and says what to fix. */
export class InputError extends TaskError {
  constructor(
    readonly input: string,
    problem: string,
    wholeMessage?: string,
  ) {
    super(wholeMessage ?? `Input '${input}': ${problem}`);
    this.name = 'InputError';
  }

  /** Worded like task-lib's own "Input required: NAME", which users and the agent know. */
  static required(input: string, hint: string): InputError {
    return new InputError(input, hint, `Input required: ${input}. ${hint}`);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
