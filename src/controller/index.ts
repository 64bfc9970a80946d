// Every controller the gantry controller process runs, in one list: adding a controller is
// writing its setup function and naming it here.
import type { ControllerSetup } from './context.js';
import { setupImageController } from './image.js';

export type { ControllerContext, ControllerSetup } from './context.js';

export const controllers: readonly ControllerSetup[] = [
  setupImageController,
];
