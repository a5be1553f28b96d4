import { runTask } from '../common/run';
import { fetchModel } from './fetchModel';
import { readParameters } from './parameters';

void runTask(() => fetchModel(readParameters()));
