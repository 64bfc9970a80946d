// The controller's command line: Kubernetes-style flags (--name=value or --name value; a bare
// boolean flag means true), each of which may also come from the environment as
// GANTRY_<NAME> (--leader-elect -> GANTRY_LEADER_ELECT). A flag wins over the environment.
// Unset --kubeconfig and --log-level leave the choice to $KUBECONFIG and $LOG_LEVEL.
import { z } from 'zod';
import { DURATION_PATTERN, durationMillis, type ParseResult } from '../api/v1alpha1/index.js';
import { logLevels } from '../obs/logger.js';
import { parseBindAddress } from '../obs/http.js';

const bindAddress = z.string().refine(
  (value) => {
    if (value === '0') return true;
    try {
      parseBindAddress(value);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'must be host:port (port 0 picks a free one), or 0 to turn it off' },
);

const duration = z
  .string()
  .regex(new RegExp(DURATION_PATTERN), 'must be a duration such as 500ms, 15s or 1m')
  .transform(durationMillis)
  .refine((ms) => ms > 0, 'must be longer than 0');

const boolean = z
  .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1');

interface Flag {
  flag: string;
  /** As it would be typed on the command line. */
  default?: string;
  /** A bare --flag means true. */
  boolean?: true;
  schema: z.ZodType<unknown, string | undefined>;
  help: string;
}

/** Every flag: its name, default, schema (applied to the string given) and help text. */
const flags = {
  kubeconfig: {
    flag: 'kubeconfig',
    schema: z.string().min(1).optional(),
    help: 'Path to a kubeconfig; unset: $KUBECONFIG, ~/.kube/config, then the in-cluster service account.',
  },
  metricsBindAddress: {
    flag: 'metrics-bind-address',
    default: '127.0.0.1:8080',
    schema: bindAddress,
    help: 'Where /metrics listens (host:port; 0 turns it off).',
  },
  healthProbeBindAddress: {
    flag: 'health-probe-bind-address',
    default: '127.0.0.1:8081',
    schema: bindAddress,
    help: 'Where /healthz and /readyz listen (host:port; 0 turns them off).',
  },
  leaderElect: {
    flag: 'leader-elect',
    default: 'true',
    boolean: true,
    schema: boolean,
    help: 'Run controllers only while holding the Lease, so one of several replicas works at a time.',
  },
  leaderElectionNamespace: {
    flag: 'leader-election-namespace',
    default: 'gantry-system',
    schema: z.string().min(1),
    help: 'Namespace of the Lease.',
  },
  leaderElectionId: {
    flag: 'leader-election-id',
    default: 'gantry-controller',
    schema: z.string().min(1),
    help: 'Name of the Lease.',
  },
  leaseDurationMs: {
    flag: 'leader-elect-lease-duration',
    default: '15s',
    schema: duration,
    help: 'How long a standby waits after the last renewal before it takes over.',
  },
  renewDeadlineMs: {
    flag: 'leader-elect-renew-deadline',
    default: '10s',
    schema: duration,
    help: 'How long the leader keeps trying to renew before it stops leading.',
  },
  retryPeriodMs: {
    flag: 'leader-elect-retry-period',
    default: '2s',
    schema: duration,
    help: 'Pause between attempts to acquire or renew the Lease.',
  },
  logLevel: {
    flag: 'log-level',
    schema: z.enum(logLevels, { error: `must be one of ${logLevels.join(', ')}` }).optional(),
    help: `One of ${logLevels.join(', ')}; unset: $LOG_LEVEL, then info.`,
  },
  insecureRegistries: {
    flag: 'insecure-registries',
    default: '127.0.0.1:5000,localhost:5000',
    schema: z
      .string()
      .transform((v) =>
        v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      )
      .refine(
        (list) => list.every((r) => /^[A-Za-z0-9.-]+(:[0-9]+)?$|^\[[0-9a-fA-F:]+\](:[0-9]+)?$/.test(r)),
        {
          message: 'must be a comma-separated list of host[:port]',
        },
      ),
    help: 'Registries (host[:port], comma-separated) reached over plain HTTP instead of HTTPS.',
  },
  registryTimeoutMs: {
    flag: 'registry-timeout',
    default: '10s',
    schema: duration,
    help: 'Limit for each registry request.',
  },
  hostLostGraceMs: {
    flag: 'host-lost-grace',
    default: '40s',
    schema: duration,
    help:
      'A Host whose heartbeat Lease has not been renewed for this long is lost: Ready turns Unknown, ' +
      'its Workload Containers are replaced elsewhere and nothing new is scheduled there.',
  },
  hostLeaseNamespace: {
    flag: 'host-lease-namespace',
    schema: z.string().min(1).optional(),
    help: "Namespace of the agents' heartbeat Leases (their --lease-namespace); unset: --leader-election-namespace.",
  },
  transferSecretNamespace: {
    flag: 'transfer-secret-namespace',
    schema: z.string().min(1).optional(),
    help:
      "Namespace of the migrations' transfer-token Secrets, which the agents read (their " +
      '--transfer-secret-namespace); unset: --leader-election-namespace.',
  },
  autoscaleSyncPeriodMs: {
    flag: 'autoscale-sync-period',
    default: '15s',
    schema: duration,
    help: 'How often built-in autoscaling evaluates each Workload (a HorizontalPodAutoscaler default).',
  },
} as const satisfies Record<string, Flag>;

type Flags = typeof flags;
export type ControllerOptions = { [K in keyof Flags]: z.output<Flags[K]['schema']> };

const optionsSchema = z
  .object(
    Object.fromEntries(Object.entries(flags).map(([key, f]) => [key, f.schema])) as {
      [K in keyof Flags]: Flags[K]['schema'];
    },
  )
  .superRefine((o, ctx) => {
    // The rules client-go's leader election enforces, said in terms of the flags.
    if (o.leaseDurationMs <= o.renewDeadlineMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['leaseDurationMs'],
        message: 'must be longer than --leader-elect-renew-deadline',
      });
    }
    if (o.renewDeadlineMs <= 1.2 * o.retryPeriodMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['renewDeadlineMs'],
        message: 'must be longer than 1.2 x --leader-elect-retry-period',
      });
    }
  });

const byFlag = new Map<string, keyof Flags>(
  Object.entries(flags).map(([key, f]) => [f.flag, key as keyof Flags]),
);
const envName = (flag: string): string => `GANTRY_${flag.toUpperCase().replace(/-/g, '_')}`;

/** Parses argv (without node and the script) and the environment into validated options. */
export function parseControllerFlags(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = {},
): ParseResult<ControllerOptions> {
  const raw: Record<string, string> = {};
  for (const [key, f] of Object.entries(flags) as [string, Flag][]) {
    const value = env[envName(f.flag)] ?? f.default;
    if (value !== undefined) raw[key] = value;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const match = /^--?([a-z0-9-]+)(?:=(.*))?$/.exec(arg);
    const key = match && byFlag.get(match[1]!);
    if (!match || !key) return { ok: false, error: `unknown argument "${arg}" (see --help)` };
    let value = match[2];
    if (value === undefined) {
      const next = argv[i + 1];
      if (
        (flags[key] as Flag).boolean &&
        (next === undefined || next.startsWith('-') || !/^(true|false|1|0)$/.test(next))
      )
        value = 'true';
      else if (next === undefined) return { ok: false, error: `flag --${match[1]} needs a value` };
      else value = argv[++i]!;
    }
    raw[key] = value;
  }
  const parsed = optionsSchema.safeParse(raw);
  if (parsed.success) return { ok: true, value: parsed.data as ControllerOptions };
  const message = parsed.error.issues
    .map((issue) => {
      const key = issue.path[0] as keyof Flags | undefined;
      return key ? `--${flags[key].flag}: ${issue.message}` : issue.message;
    })
    .join('; ');
  return { ok: false, error: `invalid flags: ${message}` };
}

export function controllerUsage(): string {
  const lines = Object.values(flags).map((f: Flag) => {
    const shown = f.default !== undefined ? ` (default ${f.default})` : '';
    return `  --${f.flag}${shown}\n      ${f.help} Env: ${envName(f.flag)}.`;
  });
  return `Usage: gantry-controller [flags]\n\nFlags:\n${lines.join('\n')}\n  --help\n      Show this help.\n`;
}
