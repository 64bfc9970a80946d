#!/usr/bin/env node
// Shell completion of `kubectl gantry`: kubectl (1.26 and newer) runs kubectl_complete-gantry from
// the PATH with the words typed after `kubectl gantry`, the last one being completed, and reads
// cobra's `__complete` answer (src/plugin/completion.ts). The package's second bin entry.
import { commands } from '../plugin/commands.js';
import { runCompletion } from '../plugin/completion.js';

process.exitCode = await runCompletion(process.argv.slice(2), commands);
