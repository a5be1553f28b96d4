import { requiredString } from '../common/inputs';

export interface DeployToAKSParameters {
  imageRef: string;
  name: string;
  namespace: string;
}

export function readParameters(): DeployToAKSParameters {
  return {
    imageRef: requiredString('imageRef'),
    name: requiredString('name'),
    namespace: requiredString('namespace'),
  };
}
