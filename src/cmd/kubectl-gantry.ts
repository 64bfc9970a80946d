#!/usr/bin/env node
// `kubectl gantry`: kubectl finds this as kubectl-gantry on the PATH (the package's bin entry).
// `kubectl-gantry __complete WORDS...` answers shell completion, as kubectl_complete-gantry does.
import { commands } from '../plugin/commands.js';
import { main } from '../plugin/cli.js';
import { runCompletion } from '../plugin/completion.js';

const argv = process.argv.slice(2);
process.exitCode =
  argv[0] === '__complete' ? await runCompletion(argv.slice(1), commands) : await main(argv, commands);
