import { existingPath, requiredString } from '../common/inputs';

export interface BakeModelImageParameters {
  baseImage: string;
  modelPath: string;
  repository: string;
}

export function readParameters(): BakeModelImageParameters {
  return {
    baseImage: requiredString('baseImage'),
    modelPath: existingPath('modelPath')!,
    repository: requiredString('repository'),
  };
}
