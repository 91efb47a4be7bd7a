import assert from 'node:assert/strict';
import { test } from 'node:test';
import { binlogStatements } from '../../src/sources/mariadb/binlog-statements.js';

async function split(text: string | Buffer, chunk = 7): Promise<string[]> {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
  // Pieces that cut lines and delimiters anywhere, as a pipe delivers them.
  async function* pieces() {
    for (let i = 0; i < bytes.length; i += chunk) yield bytes.subarray(i, i + chunk);
  }
  const out: string[] = [];
  for await (const s of binlogStatements(pieces())) out.push(s.toString('latin1'));
  return out;
}

test("mariadb-binlog's output becomes the statements the mariadb client would send", async () => {
  const output = [
    '/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=1*/;',
    '/*!40019 SET @@session.max_delayed_threads=0*/;',
    'DELIMITER /*!*/;',
    '# at 4',
    '#241204 19:32:00 server id 1  end_log_pos 256 CRC32 0x0a1b2c3d  Start: binlog v 4',
    'BINLOG \'',
    'AAAAAA==',
    'BBBBBB==',
    "'/*!*/;",
    '/*!\\C utf8mb4 *//*!*/;',
    'SET TIMESTAMP=1733340720/*!*/;',
    'INSERT INTO t VALUES (1, \'a',
    '# not a comment: inside a string',
    "b')",
    '/*!*/;',
    'COMMIT/*!*/;',
    'DELIMITER ;',
    '# End of log file',
    'ROLLBACK /* added by mysqlbinlog */;',
    '',
  ].join('\n');
  for (const chunk of [1, 7, 4096]) {
    assert.deepEqual(await split(output, chunk), [
      '/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=1*/',
      '/*!40019 SET @@session.max_delayed_threads=0*/',
      "BINLOG '\nAAAAAA==\nBBBBBB==\n'",
      'SET NAMES utf8mb4',
      'SET TIMESTAMP=1733340720',
      "INSERT INTO t VALUES (1, 'a\n# not a comment: inside a string\nb')\n",
      'COMMIT',
      'ROLLBACK /* added by mysqlbinlog */',
    ]);
  }
});

test('statements keep their bytes: text in another character set is not re-encoded', async () => {
  const latin1 = Buffer.concat([Buffer.from("DELIMITER /*!*/;\nINSERT INTO t VALUES ('"), Buffer.from([0xe4, 0xf6, 0xfc]), Buffer.from("')/*!*/;\n")]);
  const [statement] = await split(latin1, 3);
  assert.deepEqual(Buffer.from(statement!, 'latin1'), Buffer.concat([Buffer.from("INSERT INTO t VALUES ('"), Buffer.from([0xe4, 0xf6, 0xfc]), Buffer.from("')")]));
});
