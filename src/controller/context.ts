// What every controller's setup function gets: the one manager, client, event recorder and
// logger of the process, and the parsed flags.
import type { KubeClient } from '../kube/client.js';
import type { EventRecorder } from '../kube/events.js';
import type { Manager } from '../kube/manager.js';
import type { Logger } from '../obs/logger.js';
import type { ControllerOptions } from './options.js';

/** The field manager of the controller's server-side applies. */
export const fieldManager = 'gantry-controller';

export interface ControllerContext {
  manager: Manager;
  client: KubeClient;
  recorder: EventRecorder;
  log: Logger;
  options: ControllerOptions;
}

/** Creates a controller's informers and registers it with ctx.manager. */
export type ControllerSetup = (ctx: ControllerContext) => void;
