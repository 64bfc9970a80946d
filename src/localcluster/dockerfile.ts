// Reading the Dockerfile and its build context: the build arguments' defaults, what COPY and ADD
// take from the context with .dockerignore applied, and the Gantry image's input key from those.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileDigest, recipeVersion } from './imagecache.js';

/** .dockerignore's rule (moby's patternmatcher): the last pattern matching a path or a parent wins. */
export function dockerignoreMatcher(text: string): (relative: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const exclude = l.startsWith('!');
      const pattern = path.posix
        .normalize((exclude ? l.slice(1) : l).trim().replace(/^\/+/, ''))
        .replace(/\/+$/, '');
      const body = pattern
        .split('/')
        .map((part) =>
          part === '**'
            ? '.*'
            : part
                .replace(/[.+^${}()|[\]\\]/g, '\\$&')
                .replace(/\*/g, '[^/]*')
                .replace(/\?/g, '[^/]'),
        )
        .join('/');
      return { exclude, regex: new RegExp(`^${body}(/.*)?$`) };
    });
  return (relative) => {
    let ignored = false;
    for (const r of rules) if (r.regex.test(relative)) ignored = !r.exclude;
    return ignored;
  };
}

/** What COPY and ADD take from the build context (not --from another stage), as written. */
export function contextSources(dockerfile: string): string[] {
  const lines = dockerfile
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n');
  const sources: string[] = [];
  for (const line of lines) {
    const m = /^\s*(COPY|ADD)\s+(.*)$/i.exec(line);
    if (!m) continue;
    const rest = m[2]!.trim();
    const words = rest.split(/\s+/);
    const flags = words.filter((w) => w.startsWith('--'));
    if (flags.some((f) => f.startsWith('--from'))) continue;
    const operands = rest.includes('[')
      ? (JSON.parse(rest.slice(rest.indexOf('['))) as string[])
      : words.filter((w) => !w.startsWith('--'));
    sources.push(...operands.slice(0, -1));
  }
  return sources;
}

/** The files of the build context the Dockerfile copies, relative to the context, .dockerignore applied. */
function copiedFiles(context: string, dockerfile: string, ignored: (relative: string) => boolean): string[] {
  const files: string[] = [];
  const visit = (rel: string) => {
    if (ignored(rel)) return;
    const st = fs.lstatSync(path.join(context, rel));
    if (st.isDirectory()) for (const name of fs.readdirSync(path.join(context, rel))) visit(`${rel}/${name}`);
    else files.push(rel);
  };
  for (const source of contextSources(dockerfile)) {
    if (/[*?[]/.test(source)) {
      throw new Error(`the Dockerfile copies ${source}: image.ts hashes plain paths only, not patterns`);
    }
    visit(path.posix.normalize(source).replace(/^(\.\/)+|\/+$/g, '') || '.');
  }
  return [...new Set(files)].sort();
}

export function gantryKey(
  context: string,
  dockerfile: string,
  dockerignore: string,
  bases: Record<string, string>,
): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify({ recipeVersion, bases }));
  h.update(`Dockerfile\n${dockerfile}\n.dockerignore\n${dockerignore}\n`);
  for (const rel of copiedFiles(context, dockerfile, dockerignoreMatcher(dockerignore))) {
    const full = path.join(context, rel);
    const st = fs.lstatSync(full);
    h.update(
      st.isSymbolicLink()
        ? `L ${rel} ${fs.readlinkSync(full)}\n`
        : `F ${rel} ${(st.mode & 0o111) !== 0 ? 'x' : '-'} ${fileDigest(full)}\n`,
    );
  }
  return h.digest('hex');
}

/** The Dockerfile's default for a global build argument (ARG NAME=value before the first FROM). */
export function argDefault(dockerfile: string, name: string): string {
  const value = new RegExp(`^ARG\\s+${name}=(\\S+)`, 'm').exec(dockerfile)?.[1];
  if (!value) throw new Error(`the Dockerfile takes no ${name} build argument with a default`);
  return value;
}
