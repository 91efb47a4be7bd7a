/**
 * Split what mariadb-binlog prints into the statements the `mariadb` client would send:
 * lines are bytes (statements may hold any character set), a statement ends with the
 * delimiter in force at the end of a line (`DELIMITER /*!*\/;` switches it), and comment
 * lines between statements are dropped. The client's one command in that output,
 * `/*!\C charset *\/`, becomes the SET NAMES it stands for.
 */
export async function* binlogStatements(output: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let delimiter = Buffer.from(';');
  let statement: Buffer[] = [];
  let carry: Buffer = Buffer.alloc(0);
  const line = function* (text: Buffer): Generator<Buffer> {
    const trimmed = trimEnd(text);
    if (statement.length === 0) {
      if (trimmed.length === 0 || trimmed[0] === 0x23 /* # */) return;
      const word = trimmed.subarray(0, 10).toString('latin1');
      if (/^DELIMITER\s/i.test(word)) {
        delimiter = Buffer.from(trimmed.subarray(10).toString('latin1').trim(), 'latin1');
        return;
      }
    }
    if (endsWith(trimmed, delimiter)) {
      statement.push(trimmed.subarray(0, trimmed.length - delimiter.length));
      const whole = Buffer.concat(joinLines(statement));
      statement = [];
      const charset = /^\/\*!\\C\s+(\w+)\s*\*\/$/.exec(whole.toString('latin1').trim());
      if (charset) yield Buffer.from(`SET NAMES ${charset[1]}`);
      else if (trimEnd(whole).length > 0) yield whole;
    } else {
      statement.push(text);
    }
  };
  for await (const chunk of output) {
    const data = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    let start = 0;
    for (let nl = data.indexOf(0x0a, start); nl !== -1; nl = data.indexOf(0x0a, start)) {
      yield* line(data.subarray(start, nl));
      start = nl + 1;
    }
    carry = Buffer.from(data.subarray(start));
  }
  if (carry.length > 0) yield* line(carry);
  if (statement.length > 0 && trimEnd(Buffer.concat(joinLines(statement))).length > 0) yield Buffer.concat(joinLines(statement));
}

function joinLines(lines: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (const [i, l] of lines.entries()) {
    if (i > 0) out.push(NEWLINE);
    out.push(l);
  }
  return out;
}

const NEWLINE = Buffer.from('\n');

function trimEnd(b: Buffer): Buffer {
  let end = b.length;
  while (end > 0 && (b[end - 1] === 0x20 || b[end - 1] === 0x0d || b[end - 1] === 0x09)) end--;
  return b.subarray(0, end);
}

function endsWith(b: Buffer, suffix: Buffer): boolean {
  return b.length >= suffix.length && b.subarray(b.length - suffix.length).equals(suffix);
}
