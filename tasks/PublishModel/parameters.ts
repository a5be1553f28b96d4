import { existingPath, requiredString } from '../common/inputs';

export interface PublishModelParameters {
  modelPath: string;
  modelName: string;
  modelVersion: string;
}

export function readParameters(): PublishModelParameters {
  return {
    modelPath: existingPath('modelPath')!,
    modelName: requiredString('modelName'),
    modelVersion: requiredString('modelVersion'),
  };
}
