// Structured logs in the Kubernetes style: one JSON object per line on stdout, a constant `msg`
// ("Reconcile failed", not "Reconcile of ns/x failed") and the variable data in keys, so logs
// can be grouped and filtered by message.
import type { Writable } from 'node:stream';
import winston from 'winston';

export type Logger = winston.Logger;

export const logLevels = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof logLevels)[number];

export interface LoggerOptions {
  /** Defaults to $LOG_LEVEL, then 'info'. A flag should be passed here; it wins over the environment. */
  level?: string;
  /** Defaults to stdout. */
  stream?: Writable;
  /** Fields on every line, e.g. { component: 'agent', host }. */
  fields?: Record<string, unknown>;
}

export function parseLogLevel(value: string | undefined): LogLevel {
  const level = (value ?? 'info').toLowerCase();
  if (!(logLevels as readonly string[]).includes(level)) {
    throw new Error(`unknown log level "${value}": use one of ${logLevels.join(', ')}`);
  }
  return level as LogLevel;
}

// Errors have no enumerable fields, so JSON would print {}; log their message instead, and
// their stack too when the logger runs at debug level.
const kubernetesStyle = (withStacks: () => boolean): winston.Logform.Format =>
  winston.format((info) => {
    const { message, level, ...rest } = info;
    const line: Record<string | symbol, unknown> = { ts: new Date().toISOString(), level, msg: message };
    for (const [key, value] of Object.entries(rest)) {
      line[key] = value instanceof Error ? value.message : value;
      if (value instanceof Error && value.stack && withStacks()) line[`${key}Stack`] = value.stack;
    }
    // winston's transports need its symbol-keyed fields (level, message) on the output object.
    for (const sym of Object.getOwnPropertySymbols(info)) line[sym] = info[sym as unknown as string];
    return line as winston.Logform.TransformableInfo;
  })();

export function createLogger(opts: LoggerOptions = {}): Logger {
  const transport = opts.stream
    ? new winston.transports.Stream({ stream: opts.stream })
    : new winston.transports.Console();
  const logger: Logger = winston.createLogger({
    level: parseLogLevel(opts.level ?? process.env.LOG_LEVEL),
    levels: Object.fromEntries(logLevels.map((l, i) => [l, i])),
    defaultMeta: opts.fields,
    format: winston.format.combine(
      kubernetesStyle(() => logger.level === 'debug'),
      winston.format.json({ deterministic: false }),
    ),
    transports: [transport],
  });
  return logger;
}
