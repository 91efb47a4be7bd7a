#!/usr/bin/env node
/*
 * The command's entry: helpers the command will need are started first, then the rest of
 * stackvault loads (about a fifth of a second of a core) while they come up.
 */
import { quickStartPace } from '../util/v8-tiering.js';
import { restoreCallerExtraCa, restoreCallerTunables } from './launcher-env.js';
import { earlyReadsLeftOver, prestartHelpers } from './prestart.js';
import { reportUnsettledExit } from './unsettled-exit.js';

// Set before anything else runs (see v8-tiering.ts); worker threads share it.
quickStartPace();

reportUnsettledExit();

restoreCallerTunables(process.env);
const extraCa = restoreCallerExtraCa(process.env);
if (extraCa !== undefined) (await import('../util/extra-ca-on-first-use.js')).trustExtraCaOnFirstUse(extraCa);
await prestartHelpers(process.argv, process.env);
const { main } = await import('./program.js');
process.exitCode = await main(process.argv);
// The command never opened the repository whose reads prestart began: it has nothing of
// its own left to finish, and need not wait for their answers.
if (earlyReadsLeftOver()) process.exit();
