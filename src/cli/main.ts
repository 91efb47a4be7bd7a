#!/usr/bin/env node
/*
 * The command's entry: helpers the command will need are started first, then the rest of
 * stackvault loads (about a fifth of a second of a core) while they come up.
 */
import { setFlagsFromString } from 'node:v8';
import { restoreCallerExtraCa, restoreCallerTunables } from './launcher-env.js';
import { earlyReadsLeftOver, prestartHelpers } from './prestart.js';
import { reportUnsettledExit } from './unsettled-exit.js';

/*
 * V8 optimizes a function once it has run for this many bytes of bytecode (its default
 * is 67,584). A command runs most of its code briefly, and its threads (main, restore
 * writers, encoders) each compile the same functions again: at the default, optimizing
 * took 0.4-0.5 s of CPU in a 1.6 s restore of 9,600 files on two cores (a fifth of all,
 * perf), for code that was done before it paid back. At 1,000,000 only what runs long is
 * optimized: that restore took 1.44 s instead of 1.57 s and 1.83 s of CPU instead of 2.2
 * (medians of 5, alternating); a backup and a restore of 666 MiB of /usr/lib did not
 * change. Set here, before anything else runs; worker threads share the flag.
 */
setFlagsFromString('--interrupt-budget=1000000');

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
