import * as tl from 'azure-pipelines-task-lib/task';
import { TaskError } from '../common/errors';
import type { FetchModelParameters } from './parameters';

export async function fetchModel(params: FetchModelParameters): Promise<void> {
  tl.debug(`parameters: ${JSON.stringify(params)}`);
  throw new TaskError(tl.loc('NotImplemented'));
}
