// `kubectl gantry`: Docker's client for Gantry, as a kubectl plugin. This file reads the command
// line as kubectl does (global flags anywhere: -n, -A, --kubeconfig, --context, -o; `--` ends the
// flags), prints usage with the kubectl prefix, and turns failures into kubectl's messages and
// exit codes. The commands themselves are in commands.ts.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Cluster, CliError, describeError, loadConfig, type GlobalFlags } from './client.js';
import { parseFormat, type Format } from './output.js';

export const prog = 'kubectl gantry';

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Context {
  flags: GlobalFlags;
  format: Format;
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  cluster(): Cluster;
  out(text: string): void;
}

export interface Command {
  name: string;
  summary: string;
  /** After "kubectl gantry <name> ". */
  usage: string;
  description?: string;
  examples?: string[];
  options?: Options;
  /** Resolves with the exit code (0 when nothing is returned). */
  run(ctx: Context): Promise<number | void>;
}

export const globalOptions: Options = {
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
};

const globalHelp = `Global flags:
  -n, --namespace NAME     the namespace (default: the context's, or "default")
  -A, --all-namespaces     every namespace (ps)
      --kubeconfig FILE    the kubeconfig (default: $KUBECONFIG, then ~/.kube/config)
      --context NAME       the kubeconfig context
  -o, --output FORMAT      json, yaml, name or wide
  -h, --help               this help
`;

function optionHelp(options: Options): string {
  const lines = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ' VALUE' : ''}`;
    return `  ${flag}`;
  });
  return lines.length ? `Flags:\n${lines.join('\n')}\n\n` : '';
}

export function commandHelp(c: Command): string {
  return (
    `${c.description ?? c.summary}\n\nUsage:\n  ${prog} ${c.name} ${c.usage}\n\n` +
    (c.examples?.length ? `Examples:\n${c.examples.map((e) => `  ${e}`).join('\n')}\n\n` : '') +
    optionHelp(c.options ?? {}) +
    globalHelp
  );
}

export function overallHelp(commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return (
    "Docker's commands for Gantry's containers, through the Kubernetes API.\n\n" +
    `Usage:\n  ${prog} COMMAND [flags]\n\nCommands:\n` +
    commands.map((c) => `  ${c.name.padEnd(width + 2)}${c.summary}`).join('\n') +
    `\n\n${globalHelp}\nUse "${prog} COMMAND --help" for more about a command.\n`
  );
}

/** The index of the command word: the first argument that is neither a flag nor a global flag's value. */
export function commandIndex(argv: string[]): number {
  const takesValue = new Set(['-n', '--namespace', '--kubeconfig', '--context', '-o', '--output']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return -1;
    if (takesValue.has(a)) i++;
    else if (!a.startsWith('-')) return i;
  }
  return -1;
}

/** Runs the command line; resolves with the process's exit code. */
export async function main(
  argv: string[],
  commands: Command[],
  out = (s: string) => void process.stdout.write(s),
): Promise<number> {
  const at = commandIndex(argv);
  const name = at >= 0 ? argv[at] : undefined;
  const command = commands.find((c) => c.name === name);
  try {
    if (!command) {
      if (argv.includes('-h') || argv.includes('--help') || name === undefined || name === 'help') {
        out(overallHelp(commands));
        return name === undefined && !argv.some((a) => a === '-h' || a === '--help') ? 1 : 0;
      }
      throw new CliError(`unknown command "${name}" for "${prog}"\nRun '${prog} --help' for usage.`);
    }
    const args = [...argv.slice(0, at), ...argv.slice(at + 1)];
    let parsed;
    try {
      parsed = parseArgs({
        args,
        options: { ...globalOptions, ...command.options },
        allowPositionals: true,
        strict: true,
      });
    } catch (e) {
      throw new CliError(
        `${(e as Error).message.replace(/\. To specify a positional.*$/s, '')}\nSee '${prog} ${command.name} --help' for usage.`,
      );
    }
    const v = parsed.values as Context['values'];
    if (v.help) {
      out(commandHelp(command));
      return 0;
    }
    const flags: GlobalFlags = {
      kubeconfig: v.kubeconfig as string | undefined,
      context: v.context as string | undefined,
      namespace: v.namespace as string | undefined,
      allNamespaces: v['all-namespaces'] as boolean | undefined,
    };
    let cluster: Cluster | undefined;
    const code = await command.run({
      flags,
      format: parseFormat(v.output as string | undefined),
      values: v,
      positionals: parsed.positionals,
      cluster: () => (cluster ??= new Cluster(loadConfig(flags), flags)),
      out,
    });
    return code ?? 0;
  } catch (e) {
    process.stderr.write(`${describeError(e)}\n`);
    return e instanceof CliError ? e.exitCode : 1;
  }
}

/** A usage error for `c`: what is wrong, and where to read more. */
export function usageError(c: Command, message: string): CliError {
  return new CliError(
    `${message}\nUsage: ${prog} ${c.name} ${c.usage}\nSee '${prog} ${c.name} --help' for more.`,
  );
}
