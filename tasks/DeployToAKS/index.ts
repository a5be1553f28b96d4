import { runTask } from '../common/run';
import { deployToAKS } from './deployToAKS';
import { readParameters } from './parameters';

void runTask(() => deployToAKS(readParameters()));
