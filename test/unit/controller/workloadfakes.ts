// A WorkloadReconciler over in-memory caches and an apiserver that records what it is asked to do,
// for the Workload tests (workload.test.ts, workloadimage.test.ts).
import type { Container, Host, Image, Workload } from '../../../src/api/v1alpha1/index.js';
import { FakeClock } from '../../../src/kube/clock.js';
import { Store } from '../../../src/kube/store.js';
import { byWorkload, controllingWorkload } from '../../../src/controller/caches.js';
import { WorkloadReconciler } from '../../../src/controller/workload.js';
import { ctx, quietRecorder } from './fakes.js';

/** An apiserver that accepts creates, deletes and status writes but whose cache we update by hand. */
export class FakeApi {
  created: Container[] = [];
  deleted: string[] = [];
  statuses: unknown[] = [];
  containersApi = {
    create: async (c: Container) => {
      this.created.push(c);
      return c;
    },
    delete: async (name: { namespace?: string; name: string }) => {
      this.deleted.push(name.name);
      return true;
    },
  };
  workloadsApi = {
    applyStatus: async (_: unknown, status: object) => {
      this.statuses.push(status);
      return {} as Workload;
    },
  };
}

/** The scheduler's part: places every new replica on `host` (none by default: created unbound). */
export class FakePlacement {
  host: string | undefined;
  placed: string[] = [];
  settled: [key: string, created: boolean][] = [];
  placeNew = (c: Container) => {
    if (this.host) this.placed.push(c.metadata.name!);
    return this.host;
  };
  createSettled = (key: string, created: boolean) => {
    this.settled.push([key, created]);
  };
}

export function workloadReconciler(wl: Workload) {
  const workloads = new Store<Workload>();
  workloads.set(wl);
  const containers = new Store<Container>({
    [byWorkload]: (c) => {
      const owner = controllingWorkload(c);
      return owner ? [owner] : [];
    },
  });
  const images = new Store<Image>();
  const hosts = new Store<Host>();
  const api = new FakeApi();
  const placement = new FakePlacement();
  const clock = new FakeClock();
  const recorder = quietRecorder(clock);
  const reconciler = new WorkloadReconciler({
    workloads,
    containers,
    images,
    hosts,
    workloadsApi: api.workloadsApi,
    containersApi: api.containersApi,
    placement,
    recorder,
    clock,
  });
  return { workloads, containers, images, hosts, api, placement, clock, reconciler, ctx };
}
