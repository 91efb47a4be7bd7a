import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commandInArgs } from '../../src/cli/command-in-args.js';
import { buildProgram } from '../../src/cli/program.js';

const line = (...words: string[]) => ['node', 'stackvault', ...words];

test('a command line loads the module of its own command only, and that module registers it', async () => {
  const all = await buildProgram();
  assert.ok(all.commands.length > 20);
  for (const command of all.commands) {
    for (const name of [command.name(), ...command.aliases()]) {
      const program = await buildProgram(line('--repo', '/srv/backup', '-q', name, '--help'));
      assert.ok(
        program.commands.some((c) => c.name() === command.name()),
        `${name}: its module is not the one COMMAND_GROUPS names`,
      );
      assert.ok(program.commands.length < all.commands.length, `${name}: every command was loaded`);
    }
  }
  // No command, help, a mistyped one: all of them, for the help and the error's suggestions.
  for (const words of [[], ['help', 'restore'], ['restor'], ['--json']]) {
    assert.equal((await buildProgram(line(...words))).commands.length, all.commands.length, words.join(' '));
  }
});

test('the command is the first word that is neither a global option nor its value', () => {
  assert.equal(commandInArgs(line('-r', 'restore', 'snapshots')), 'snapshots');
  assert.equal(commandInArgs(line('--repo', '/x', '--password-file', 'pw', '--json', 'restore', 'latest')), 'restore');
  assert.equal(commandInArgs(line('--repo=/x', '-c', 'stackvault.yaml', 'check')), 'check');
  assert.equal(commandInArgs(line('--json')), undefined);
});
