import { runTask } from '../common/run';
import { readParameters } from './parameters';
import { publishModel } from './publishModel';

void runTask(() => publishModel(readParameters()));
