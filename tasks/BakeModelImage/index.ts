import { runTask } from '../common/run';
import { readParameters } from './parameters';
import { bakeModelImage } from './bakeModelImage';

void runTask(() => bakeModelImage(readParameters()));
