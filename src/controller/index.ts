// Every controller the gantry controller process runs, in one list: adding a controller is
// writing its setup function and naming it here.
import { setupAutoscaleController } from './autoscale.js';
import { setupSchedulingController } from './binding.js';
import type { ControllerSetup } from './context.js';
import { setupDrainController } from './drain.js';
import { setupEndpointSliceController } from './endpointslice.js';
import { setupHostLabelController } from './hostlabels.js';
import { setupHostLifecycleController } from './hostlifecycle.js';
import { setupImageController } from './image.js';
import { setupMigrationController } from './migration/index.js';
import { setupWorkloadController } from './workload.js';

export type { ControllerContext, ControllerSetup } from './context.js';

export const controllers: readonly ControllerSetup[] = [
  setupImageController,
  setupWorkloadController,
  setupSchedulingController,
  setupHostLifecycleController,
  setupHostLabelController,
  setupAutoscaleController,
  setupMigrationController,
  setupDrainController,
  setupEndpointSliceController,
];
