#!/usr/bin/env node
// `kubectl gantry`: kubectl finds this as kubectl-gantry on the PATH (the package's bin entry).
import { commands } from '../plugin/commands.js';
import { main } from '../plugin/cli.js';

process.exitCode = await main(process.argv.slice(2), commands);
