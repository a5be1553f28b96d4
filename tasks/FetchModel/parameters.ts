import { enumInput, requiredString } from '../common/inputs';

export interface FetchModelParameters {
  source: 'azureBlob' | 's3' | 'pipelineArtifact' | 'url';
  modelPath: string;
  targetPath: string;
}

export function readParameters(): FetchModelParameters {
  return {
    source: enumInput('source', ['azureBlob', 's3', 'pipelineArtifact', 'url'] as const, 'azureBlob'),
    modelPath: requiredString('modelPath'),
    targetPath: requiredString('targetPath'),
  };
}
