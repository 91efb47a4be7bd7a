#!/usr/bin/env node
/*
 * The command's entry: helpers the command will need are started first, then the rest of
 * stackvault loads (about a fifth of a second of a core) while they come up.
 */
import { prestartHelpers } from './prestart.js';

prestartHelpers(process.argv, process.env);
const { main } = await import('./program.js');
process.exitCode = await main(process.argv);
