// What the reconciler unit tests share: a silent logger, a reconcile context, an event recorder
// whose writes go nowhere, and the Ready condition of a Host whose agent heartbeats.
import { PassThrough } from 'node:stream';
import type { EventsV1Event } from '@kubernetes/client-node';
import type { Clock } from '../../../src/kube/clock.js';
import type { ReconcileContext } from '../../../src/kube/controller.js';
import { EventRecorder } from '../../../src/kube/events.js';
import { createLogger } from '../../../src/obs/logger.js';

export const log = createLogger({ stream: new PassThrough() });

export const ctx: ReconcileContext = { log, reconcileID: 'test', signal: new AbortController().signal };

export function quietRecorder(clock?: Clock): EventRecorder {
  const ok = async () => ({}) as EventsV1Event;
  return new EventRecorder({
    api: { createNamespacedEvent: ok, patchNamespacedEvent: ok },
    reportingController: 'test',
    reportingInstance: 'test',
    log,
    clock,
  });
}

/** A Host's Ready condition while its agent heartbeats. */
export const hostReady = {
  type: 'Ready',
  status: 'True' as const,
  reason: 'RuntimeReady',
  message: '',
  lastTransitionTime: '2026-01-01T00:00:00Z',
};
