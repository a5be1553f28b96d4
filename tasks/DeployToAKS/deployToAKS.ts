import * as tl from 'azure-pipelines-task-lib/task';
import { TaskError } from '../common/errors';
import type { DeployToAKSParameters } from './parameters';

export async function deployToAKS(params: DeployToAKSParameters): Promise<void> {
  tl.debug(`parameters: ${JSON.stringify(params)}`);
  throw new TaskError(tl.loc('NotImplemented'));
}
