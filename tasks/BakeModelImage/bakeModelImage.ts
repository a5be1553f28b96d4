import * as tl from 'azure-pipelines-task-lib/task';
import { TaskError } from '../common/errors';
import type { BakeModelImageParameters } from './parameters';

export async function bakeModelImage(params: BakeModelImageParameters): Promise<void> {
  tl.debug(`parameters: ${JSON.stringify(params)}`);
  throw new TaskError(tl.loc('NotImplemented'));
}
