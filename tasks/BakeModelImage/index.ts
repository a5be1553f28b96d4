import { runTask } from '../common/run';
import { bakeModelImage } from './bakeModelImage';
import { readParameters } from './parameters';

void runTask(() => bakeModelImage(readParameters()));
