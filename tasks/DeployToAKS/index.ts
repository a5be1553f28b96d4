import { runTask } from '../common/run';
import { readParameters } from './parameters';
import { deployToAKS } from './deployToAKS';

void runTask(() => deployToAKS(readParameters()));
