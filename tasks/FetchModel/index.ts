import { runTask } from '../common/run';
import { readParameters } from './parameters';
import { fetchModel } from './fetchModel';

void runTask(() => fetchModel(readParameters()));
