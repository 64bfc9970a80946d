// Shell completion for `kubectl gantry`, in cobra's `__complete` protocol, which kubectl (1.26 and
// newer) speaks to plugins: for `kubectl gantry logs w<TAB>` kubectl runs `kubectl_complete-gantry
// logs w` found on the PATH (the words after the plugin's name, the last one the word being
// completed, "" for a new one) and reads one candidate a line ("value" or "value<TAB>description"),
// then a last line ":<directive>" (cobra's ShellCompDirective bits). `kubectl gantry __complete
// ...` answers the same, and `kubectl gantry completion bash|zsh` prints a script that completes
// kubectl-gantry typed on its own through it.
//
// Completed: command names, the command's flags, -n namespaces, --context contexts, -o formats,
// Container names for a command whose usage starts with NAME (in the namespace -n names, else the
// context's), Host names for HOST and migrate --to. Names are listed with the user's own
// credentials; what they may not list is not offered.
import { type Command, type Context, globalOptions, type Options, usageError } from './cli.js';
import { Cluster, type GlobalFlags, loadConfig } from './client.js';

/** cobra's ShellCompDirective bits. */
export const directive = {
  default: 0,
  error: 1,
  noSpace: 2,
  noFileComp: 4,
  filterFileExt: 8,
  filterDirs: 16,
  keepOrder: 32,
} as const;

export interface Completions {
  candidates: string[];
  directive: number;
}

/** Where names come from: the cluster, with the credentials and namespace the typed flags give. */
export interface Sources {
  containers(flags: GlobalFlags): Promise<string[]>;
  hosts(flags: GlobalFlags): Promise<string[]>;
  namespaces(flags: GlobalFlags): Promise<string[]>;
  contexts(flags: GlobalFlags): Promise<string[]>;
}

const globalDescriptions: Record<string, string> = {
  namespace: 'the namespace',
  'all-namespaces': 'every namespace',
  kubeconfig: 'the kubeconfig file',
  context: 'the kubeconfig context',
  output: 'json, yaml, name or wide',
  help: 'help for the command',
};

/** Fixed values of flags, by flag name. */
const flagValues: Record<string, string[]> = {
  output: ['json', 'yaml', 'name', 'wide'],
  mode: ['Checkpoint', 'Restart'],
  fallback: ['None', 'Restart'],
};

interface Typed {
  command?: Command;
  /** A first word that names no command: nothing to offer after it. */
  unknownCommand: boolean;
  flags: GlobalFlags;
  given: Set<string>;
  positionals: string[];
  afterDashDash: boolean;
  /** The flag (long name) whose value is the word being completed. */
  valueFor?: string;
}

function optionsOf(command: Command | undefined): Options {
  return { ...globalOptions, ...command?.options };
}

/** The long name of `-s` or `--name`, if the command (or kubectl gantry) has such a flag. */
function flagName(options: Options, word: string): string | undefined {
  if (word.startsWith('--')) {
    const name = word.slice(2).split('=')[0]!;
    return options[name] ? name : undefined;
  }
  return Object.entries(options).find(([, o]) => o.short === word[1])?.[0];
}

/** Reads the words before the one being completed as main() would. */
function read(words: string[], commands: Command[]): Typed {
  const t: Typed = {
    unknownCommand: false,
    flags: {},
    given: new Set(),
    positionals: [],
    afterDashDash: false,
  };
  const set = (name: string, value: string | undefined) => {
    t.given.add(name);
    if (name === 'namespace') t.flags.namespace = value;
    if (name === 'kubeconfig') t.flags.kubeconfig = value;
    if (name === 'context') t.flags.context = value;
    if (name === 'all-namespaces') t.flags.allNamespaces = true;
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (t.afterDashDash) {
      t.positionals.push(w);
    } else if (w === '--') {
      t.afterDashDash = true;
    } else if (w.startsWith('-') && w.length > 1) {
      const options = optionsOf(t.command);
      const name = flagName(options, w);
      if (!name) continue;
      const inline = w.startsWith('--')
        ? w.split('=').slice(1).join('=') || undefined
        : w.slice(2) || undefined;
      if (options[name]!.type !== 'string' || inline !== undefined) set(name, inline);
      else if (i === words.length - 1) t.valueFor = name;
      else set(name, words[++i]);
    } else if (!t.command && !t.unknownCommand) {
      t.command = commands.find((c) => c.name === w);
      t.unknownCommand = !t.command;
    } else {
      t.positionals.push(w);
    }
  }
  return t;
}

/**
 * The positional arguments a usage line names, in order: "NAME [-f] [--tail N]" -> ["NAME"],
 * "NAME... [--wait]" -> ["NAME..."], "bash|zsh" -> ["bash|zsh"]. Bracketed flags and what follows
 * `--` are left out; an optional argument ("[NAME]") counts.
 */
export function usageArguments(usage: string): string[] {
  let s = usage;
  for (let prev = ''; prev !== s;) {
    prev = s;
    s = s.replace(/\[([^[\]]*)\]/g, (_, inner: string) => (inner.trimStart().startsWith('-') ? '' : inner));
  }
  const words = s.split(/\s+/).filter((w) => w !== '');
  const end = words.indexOf('--');
  // A required flag's value ("-t IMAGE") is not a positional argument.
  return (end >= 0 ? words.slice(0, end) : words).filter(
    (w, i, all) => !w.startsWith('-') && !/^\.+$/.test(w) && !all[i - 1]?.startsWith('-'),
  );
}

function matching(candidates: string[], prefix: string): string[] {
  return candidates.filter((c) => c.startsWith(prefix));
}

async function quietly(list: Promise<string[]>): Promise<string[]> {
  try {
    return [...new Set(await list)].sort();
  } catch {
    return []; // not allowed, or unreachable: nothing to offer, as kubectl's own completion does
  }
}

/** The values of a flag that start with `prefix`. */
async function valuesOf(
  flag: string,
  command: Command | undefined,
  t: Typed,
  prefix: string,
  sources: Sources,
): Promise<Completions> {
  const none = { candidates: [], directive: directive.noFileComp };
  let values: string[];
  if (flag === 'kubeconfig')
    return { candidates: [], directive: directive.default }; // a file
  else if (flag === 'namespace') values = await quietly(sources.namespaces(t.flags));
  else if (flag === 'context') values = await quietly(sources.contexts(t.flags));
  else if (flag === 'to' && command?.name === 'migrate') values = await quietly(sources.hosts(t.flags));
  else if (flagValues[flag]) values = flagValues[flag];
  else return none;
  return { candidates: matching(values, prefix), directive: directive.noFileComp };
}

/**
 * What to offer for the last of `words` (the words typed after `kubectl gantry`; the last is the
 * one being completed, "" when it is a new one).
 */
export async function complete(words: string[], commands: Command[], sources: Sources): Promise<Completions> {
  const current = words.at(-1) ?? '';
  const t = read(words.slice(0, -1), commands);
  const none = { candidates: [], directive: directive.noFileComp };
  if (t.unknownCommand) return none;
  if (t.valueFor) return valuesOf(t.valueFor, t.command, t, current, sources);
  if (t.afterDashDash) return none;
  if (current.startsWith('-')) {
    const options = optionsOf(t.command);
    const eq = current.indexOf('=');
    if (current.startsWith('--') && eq > 0) {
      const name = current.slice(2, eq);
      if (options[name]?.type !== 'string') return none;
      const r = await valuesOf(name, t.command, t, current.slice(eq + 1), sources);
      return { ...r, candidates: r.candidates.map((v) => `--${name}=${v}`) };
    }
    const candidates: string[] = [];
    for (const [name, o] of Object.entries(options)) {
      if (t.given.has(name) && !o.multiple) continue;
      const about = globalDescriptions[name];
      const line = (flag: string) => (about ? `${flag}\t${about}` : flag);
      if (`--${name}`.startsWith(current)) candidates.push(line(`--${name}`));
      if (o.short && `-${o.short}`.startsWith(current)) candidates.push(line(`-${o.short}`));
    }
    return { candidates, directive: directive.noFileComp };
  }
  if (!t.command) {
    return {
      candidates: commands.filter((c) => c.name.startsWith(current)).map((c) => `${c.name}\t${c.summary}`),
      directive: directive.noFileComp,
    };
  }
  const args = usageArguments(t.command.usage);
  const at = t.positionals.length;
  const last = args.at(-1);
  const arg = args[at] ?? (last?.endsWith('...') ? last : undefined);
  if (!arg) return none;
  const kind = arg.replace(/\.\.\.$/, '');
  let values: string[];
  if (kind === 'NAME' || kind === 'CONTAINER') values = await quietly(sources.containers(t.flags));
  else if (kind === 'HOST') values = await quietly(sources.hosts(t.flags));
  else if (kind.includes('|')) values = kind.split('|');
  else if (kind === 'PATH') return { candidates: [], directive: directive.filterDirs };
  else return none;
  // A name already given to a command taking several is not offered again.
  if (arg.endsWith('...')) values = values.filter((v) => !t.positionals.includes(v));
  return { candidates: matching(values, current), directive: directive.noFileComp };
}

/** Each source gives up after this long: a completion that hangs is worse than none. */
const sourceTimeoutMs = 5000;

function within<T>(p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), sourceTimeoutMs);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** The cluster as the typed flags (else the kubeconfig) name it, with the user's credentials. */
export const clusterSources: Sources = {
  containers: (flags) =>
    within(
      (async () => {
        const cluster = new Cluster(loadConfig(flags), flags);
        const list = await cluster.api('Container').list({ namespace: cluster.namespace });
        return list.map((c) => c.metadata.name!);
      })(),
    ),
  hosts: (flags) =>
    within(
      (async () => {
        const cluster = new Cluster(loadConfig(flags), flags);
        return (await cluster.api('Host').list()).map((h) => h.metadata.name!);
      })(),
    ),
  namespaces: (flags) =>
    within(
      (async () => {
        const cluster = new Cluster(loadConfig({ ...flags, namespace: undefined }), flags);
        const list = await cluster.client.requestJSON<{ items: { metadata: { name: string } }[] }>(
          'GET',
          '/api/v1/namespaces',
        );
        return list.items.map((n) => n.metadata.name);
      })(),
    ),
  contexts: async (flags) => loadConfig({ ...flags, context: undefined }).contexts.map((c) => c.name),
};

/** Answers a `__complete` request: candidates one a line, then ":<directive>". */
export async function runCompletion(
  words: string[],
  commands: Command[],
  out = (s: string) => void process.stdout.write(s),
  sources: Sources = clusterSources,
): Promise<number> {
  const r = await complete(words.length ? words : [''], commands, sources);
  out(r.candidates.map((c) => `${c}\n`).join('') + `:${r.directive}\n`);
  return 0;
}

const bashScript = `# bash completion for kubectl-gantry, printed by \`kubectl gantry completion bash\`.
# kubectl 1.26 and newer complete \`kubectl gantry ...\` themselves, through kubectl_complete-gantry
# on the PATH; this completes kubectl-gantry typed on its own (or an alias: complete -F
# __kubectl_gantry_complete ALIAS).
__kubectl_gantry_complete() {
    local out directive line
    COMPREPLY=()
    out=$(kubectl-gantry __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return
    directive=\${out##*:}
    out=\${out%:*}
    (( directive & 1 )) && return
    while IFS= read -r line; do
        [[ -n $line ]] && COMPREPLY+=("\${line%%$'\\t'*}")
    done <<< "$out"
    (( directive & 2 )) && compopt -o nospace 2>/dev/null
    if (( \${#COMPREPLY[@]} == 0 && (directive & 4) == 0 )); then
        compopt -o default 2>/dev/null
    fi
    return 0
}
complete -F __kubectl_gantry_complete kubectl-gantry
`;

const zshScript = `#compdef kubectl-gantry
# zsh completion for kubectl-gantry, printed by \`kubectl gantry completion zsh\`.
# kubectl 1.26 and newer complete \`kubectl gantry ...\` themselves, through kubectl_complete-gantry
# on the PATH; this completes kubectl-gantry typed on its own.
__kubectl_gantry_complete() {
    local out directive line value
    local -a lines comps nospace
    out=$(kubectl-gantry __complete "\${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
    lines=("\${(@f)out}")
    directive=\${lines[-1]#:}
    (( directive & 1 )) && return 1
    for line in "\${(@)lines[1,-2]}"; do
        [[ -n $line ]] || continue
        value=\${\${line%%$'\\t'*}//:/\\\\:}
        if [[ $line == *$'\\t'* ]]; then comps+=("$value:\${line#*$'\\t'}"); else comps+=("$value"); fi
    done
    (( directive & 2 )) && nospace=(-S '')
    if (( \${#comps} )); then
        _describe -t values 'kubectl gantry' comps "\${nospace[@]}"
    elif (( (directive & 4) == 0 )); then
        _files
    fi
}
if [[ \${funcstack[1]} == _kubectl-gantry ]]; then
    __kubectl_gantry_complete "$@"
else
    compdef __kubectl_gantry_complete kubectl-gantry
fi
`;

export const completionScripts: Record<string, string> = { bash: bashScript, zsh: zshScript };

export const completion: Command = {
  name: 'completion',
  summary: 'Print a shell completion script (bash or zsh)',
  usage: 'bash|zsh',
  description:
    'Print a script that completes kubectl-gantry typed on its own: commands, flags, namespaces, ' +
    'and Container and Host names listed with your credentials. kubectl 1.26 and newer complete ' +
    '`kubectl gantry ...` themselves when kubectl_complete-gantry (installed with the plugin) is on ' +
    'the PATH, beside your `kubectl completion` script.',
  examples: [
    'source <(kubectl gantry completion bash)',
    'kubectl gantry completion zsh > "${fpath[1]}/_kubectl-gantry"',
  ],
  async run(ctx: Context) {
    const [shell, ...extra] = ctx.positionals;
    if (!shell) throw usageError(completion, 'a shell is required: bash or zsh');
    if (extra.length > 0) throw usageError(completion, `unexpected argument "${extra[0]}"`);
    const script = completionScripts[shell];
    if (!script) throw usageError(completion, `unsupported shell "${shell}": bash or zsh`);
    ctx.out(script);
  },
};
