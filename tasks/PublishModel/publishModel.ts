import * as tl from 'azure-pipelines-task-lib/task';
import { TaskError } from '../common/errors';
import type { PublishModelParameters } from './parameters';

export async function publishModel(params: PublishModelParameters): Promise<void> {
  tl.debug(`parameters: ${JSON.stringify(params)}`);
  throw new TaskError(tl.loc('NotImplemented'));
}
