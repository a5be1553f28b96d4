import * as tl from 'azure-pipelines-task-lib/task';

/** An output variable, readable as $(step.Name) in the same job and as a stage/job dependency output. */
export function setOutput(name: string, value: string | number): void {
  tl.setVariable(name, String(value), false, true);
}
