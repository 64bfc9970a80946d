// Command-line options of Gantry's processes, one way for all: every option of a zod schema is a
// `--kebab-case` flag, or an environment variable `<PREFIX>_SNAKE_CASE`, or its default, in that
// order; the schema turns the strings into typed values, and any problem names the flag.
import { parseArgs } from 'node:util';
import type { z } from 'zod';

const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Flags win over environment variables, which win over defaults. */
export function parseFlags<S extends z.ZodTypeAny>(
  schema: S,
  defaults: Record<string, string | undefined>,
  envPrefix: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
): z.infer<S> {
  const keys = Object.keys(defaults);
  const envName = (k: string) => `${envPrefix}_${kebab(k).replace(/-/g, '_').toUpperCase()}`;
  const { values } = parseArgs({
    args: argv,
    options: Object.fromEntries(keys.map((k) => [kebab(k), { type: 'string' as const }])),
    strict: true,
  });
  const raw = Object.fromEntries(
    keys.map((k) => [k, (values[kebab(k)] as string | undefined) ?? env[envName(k)] ?? defaults[k]]),
  );
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `--${kebab(String(i.path[0]))}: ${i.message}`);
    throw new Error(`invalid options: ${problems.join('; ')}`);
  }
  return parsed.data as z.infer<S>;
}
