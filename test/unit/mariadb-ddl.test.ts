import assert from 'node:assert/strict';
import { test } from 'node:test';
import { splitCreateTable } from '../../src/sources/mariadb/ddl.js';
import { renameQualifiers } from '../../src/sources/mariadb/restore.js';
import { DEFAULT_ROWS_PER_PART, partStep } from '../../src/sources/mariadb/dump.js';

const create = [
  'CREATE TABLE `t` (',
  '  `id` int(11) NOT NULL,',
  '  `seq` int(11) NOT NULL AUTO_INCREMENT,',
  "  `note` varchar(20) DEFAULT 'KEY `x` (y),',",
  '  PRIMARY KEY (`id`),',
  '  UNIQUE KEY `u_note` (`note`),',
  '  KEY `k_seq` (`seq`),',
  '  KEY `k_note` (`note`(5),`id`),',
  '  FULLTEXT KEY `ft` (`note`),',
  '  CONSTRAINT `fk``1` FOREIGN KEY (`id`) REFERENCES `p` (`id`) ON DELETE CASCADE,',
  '  CONSTRAINT `chk` CHECK (`id` > 0)',
  ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
].join('\n');

test('secondary keys and foreign keys are split off; what AUTO_INCREMENT and FULLTEXT need stays', () => {
  const split = splitCreateTable(create, 'InnoDB');
  assert.equal(
    split.create,
    [
      'CREATE TABLE `t` (',
      '  `id` int(11) NOT NULL,',
      '  `seq` int(11) NOT NULL AUTO_INCREMENT,',
      "  `note` varchar(20) DEFAULT 'KEY `x` (y),',",
      '  PRIMARY KEY (`id`),',
      '  KEY `k_seq` (`seq`),',
      '  FULLTEXT KEY `ft` (`note`),',
      '  CONSTRAINT `chk` CHECK (`id` > 0)',
      ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
    ].join('\n'),
  );
  assert.deepEqual(split.indexes, ['ADD UNIQUE KEY `u_note` (`note`)', 'ADD KEY `k_note` (`note`(5),`id`)']);
  assert.deepEqual(split.foreignKeys, ['ADD CONSTRAINT `fk``1` FOREIGN KEY (`id`) REFERENCES `p` (`id`) ON DELETE CASCADE']);
});

test('tables of other engines are created whole', () => {
  assert.deepEqual(splitCreateTable(create, 'MyISAM'), { create, indexes: [], foreignKeys: [] });
});

test('table parts stay put while the row estimate of the server wanders', () => {
  // InnoDB's estimate of a 60,000-row table moved between these on one test server.
  const steps = new Set([0.75, 0.8, 0.9, 0.95, 0.97, 1, 1.03, 1.1, 1.2, 1.35].map((f) => partStep(60_000n, Math.round(60_000 * f), 4096)));
  assert.deepEqual([...steps], [4096n]);
  assert.equal(partStep(60_000n, 60_000, DEFAULT_ROWS_PER_PART), 262_144n, 'the default gives a dense table the same margin');
});

test('definitions are found by tokens: a name or a string holding newlines, commas and parentheses stays whole', () => {
  const odd = [
    'CREATE TABLE `calls (2025)` (',
    '  `id` int(11) NOT NULL,',
    '  `a\nb, (c)` varchar(20) DEFAULT \'it\'\'s\n), KEY `x` (y)\',',
    "  `agent` varchar(20) DEFAULT 'back\\\\slash \\' quote',",
    '  PRIMARY KEY (`id`),',
    '  KEY `k\nodd` (`a\nb, (c)`),',
    '  KEY `k_agent` (`agent`)',
    ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
  ].join('\n');
  const split = splitCreateTable(odd, 'InnoDB');
  assert.equal(
    split.create,
    [
      'CREATE TABLE `calls (2025)` (',
      '  `id` int(11) NOT NULL,',
      '  `a\nb, (c)` varchar(20) DEFAULT \'it\'\'s\n), KEY `x` (y)\',',
      "  `agent` varchar(20) DEFAULT 'back\\\\slash \\' quote',",
      '  PRIMARY KEY (`id`)',
      ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
    ].join('\n'),
  );
  assert.deepEqual(split.indexes, ['ADD KEY `k\nodd` (`a\nb, (c)`)', 'ADD KEY `k_agent` (`agent`)']);
});

test('--rename-db renames names only: text in string literals stays as it was', () => {
  const view = "select `app`.`t`.`id` AS `id`,'see `app`.x' AS `hint`,\"it''s `app`.y\" AS `q`,'a\\'b `app`.z' AS `e` from `app`.`t` join `apps`.`u`";
  assert.equal(
    renameQualifiers(view, new Map([['app', 'app2']])),
    "select `app2`.`t`.`id` AS `id`,'see `app`.x' AS `hint`,\"it''s `app`.y\" AS `q`,'a\\'b `app`.z' AS `e` from `app2`.`t` join `apps`.`u`",
  );
});
