import * as path from 'node:path';

import * as tl from 'azure-pipelines-task-lib/task';

import { errorMessage, TaskError } from './errors';
import { scrub } from './secrets';

/**
 * The whole of a task's entry point: load messages, do the work, and turn the outcome into
 * one `task.complete`. A TaskError is the user's to fix and prints as one line; anything else
 * is our bug and shows its stack (only under system.debug, to keep logs readable).
 */
export async function runTask(work: () => Promise<string | void>, taskDir = __dirname): Promise<void> {
  try {
    tl.setResourcePath(path.join(taskDir, 'task.json'));
    const message = await work();
    tl.setResult(tl.TaskResult.Succeeded, message ?? '');
  } catch (err) {
    const debug = /^true$/i.test(tl.getVariable('System.Debug') ?? '');
    const message = scrub(errorMessage(err));
    if (!(err instanceof TaskError) || debug) {
      const stack = err instanceof Error && err.stack ? scrub(err.stack) : undefined;
      if (stack) (debug ? console.log : tl.debug)(stack);
    }
    tl.setResult(tl.TaskResult.Failed, message);
  }
}
