import { createConnection, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { StackvaultError } from '../../util/errors.js';
import { clearPasswordResponse, nativePasswordResponse } from './auth.js';
import { ed25519Response } from './ed25519.js';
import { ConnectionClosedError, PacketReader, PayloadCursor, framePackets, lenencInt } from './wire.js';

/**
 * A minimal client for the MySQL/MariaDB protocol, written for the dump's hot path: result
 * rows are handed over as raw packets (no value decoding per cell), and LOAD DATA LOCAL
 * streams straight from the repository. Text protocol only; one command at a time.
 */

export interface TlsOptions {
  /** PEM text of the CA that signed the server's certificate */
  ca?: string;
  cert?: string;
  key?: string;
  /** check the server's certificate and host name (default true) */
  verify?: boolean;
}

export interface ConnectOptions {
  host?: string;
  port?: number;
  /** a Unix socket path; used instead of host and port */
  socket?: string;
  user: string;
  password?: string;
  database?: string;
  tls?: TlsOptions;
  connectTimeoutMs?: number;
  /** several statements in one query (a replay sends them in batches); off by default */
  multiStatements?: boolean;
}

export interface ColumnDef {
  name: string;
  table: string;
  charset: number;
  type: number;
  flags: number;
}

export interface OkResult {
  affectedRows: number;
  warnings: number;
  info: string;
}

export type Row = Array<Buffer | null>;

export interface ResultSet {
  columns: ColumnDef[];
  rows: Row[];
}

/** An error the server reported for a statement: the connection stays usable. */
export class ServerError extends StackvaultError {
  constructor(
    readonly code: number,
    readonly sqlState: string,
    readonly serverMessage: string,
  ) {
    super(`server error ${code} (${sqlState}): ${serverMessage}`);
  }
}

/** Cannot reach or log in to the server. */
export class ConnectError extends StackvaultError {}

const CLIENT = {
  LONG_PASSWORD: 0x1,
  LONG_FLAG: 0x4,
  CONNECT_WITH_DB: 0x8,
  LOCAL_FILES: 0x80,
  PROTOCOL_41: 0x200,
  SSL: 0x800,
  TRANSACTIONS: 0x2000,
  SECURE_CONNECTION: 0x8000,
  MULTI_STATEMENTS: 0x10000,
  MULTI_RESULTS: 0x20000,
  PLUGIN_AUTH: 0x80000,
  PLUGIN_AUTH_LENENC_CLIENT_DATA: 0x200000,
} as const;

const COM_QUIT = 0x01;
const COM_QUERY = 0x03;
const COM_BINLOG_DUMP = 0x12;
/** COM_BINLOG_DUMP flag: answer with an end packet at the end of the log instead of waiting for more. */
const BINLOG_DUMP_NON_BLOCK = 0x01;
const UTF8MB4_GENERAL_CI = 45;
const SERVER_MORE_RESULTS_EXIST = 0x08;
/** The largest packet the client accepts (the server's max_allowed_packet still applies). */
const CLIENT_MAX_PACKET = 0x40000000;

/** True for an end-of-result packet (as opposed to a row that starts with 0xfe). */
export function isEofPacket(p: Buffer): boolean {
  return p[0] === 0xfe && p.length < 9;
}

export function parseError(p: Buffer): ServerError {
  const c = new PayloadCursor(p, 1);
  const code = c.u16();
  let state = 'HY000';
  if (c.remaining > 0 && p[c.pos] === 0x23) {
    c.skip(1);
    state = c.bytes(5).toString('latin1');
  }
  return new ServerError(code, state, c.rest().toString('utf8'));
}

function parseOk(p: Buffer): OkResult & { status: number } {
  const c = new PayloadCursor(p, 1);
  const affectedRows = c.lenencInt() ?? 0;
  c.lenencInt();
  const status = c.u16();
  const warnings = c.u16();
  return { affectedRows, warnings, status, info: c.rest().toString('utf8') };
}

function parseColumn(p: Buffer): ColumnDef {
  const c = new PayloadCursor(p);
  c.lenencBytes(); // catalog
  c.lenencBytes(); // schema
  const table = c.lenencString();
  c.lenencBytes(); // original table
  const name = c.lenencString();
  c.lenencBytes(); // original name
  c.lenencInt(); // length of the fixed fields
  const charset = c.u16();
  c.u32(); // display length
  const type = c.u8();
  const flags = c.u16();
  return { name, table, charset, type, flags };
}

export function describeEndpoint(o: Pick<ConnectOptions, 'host' | 'port' | 'socket'>): string {
  return o.socket ? `socket ${o.socket}` : `${o.host ?? '127.0.0.1'}:${o.port ?? 3306}`;
}

export class Connection {
  private reader: PacketReader;
  private busy = false;
  private broken: Error | undefined;
  serverVersion = '';
  connectionId = 0;

  private constructor(
    private socket: Socket | TLSSocket,
    private readonly endpoint: string,
  ) {
    this.reader = new PacketReader(socket);
  }

  get isMariaDB(): boolean {
    return /mariadb/i.test(this.serverVersion);
  }

  static async connect(options: ConnectOptions): Promise<Connection> {
    const endpoint = describeEndpoint(options);
    const timeoutMs = options.connectTimeoutMs ?? 15_000;
    const socket = await openSocket(options, endpoint, timeoutMs);
    const conn = new Connection(socket, endpoint);
    const timer = setTimeout(() => socket.destroy(new ConnectError(`mariadb at ${endpoint}: no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    try {
      await conn.handshake(options);
    } catch (err) {
      socket.destroy();
      if (err instanceof ServerError) throw new ConnectError(`mariadb at ${endpoint}: ${err.serverMessage}`);
      if (err instanceof ConnectError) throw err;
      throw new ConnectError(`mariadb at ${endpoint}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      clearTimeout(timer);
    }
    socket.setKeepAlive(true, 30_000);
    return conn;
  }

  private send(payload: Buffer): void {
    const frames: Buffer[] = [];
    this.reader.sequence = framePackets(payload, this.reader.sequence, frames);
    for (const f of frames) this.socket.write(f);
  }

  /**
   * The login: the server's greeting, our capabilities (and TLS, if asked for), the first
   * answer for the server's authentication plugin, then whatever plugin it switches to.
   */
  private async handshake(options: ConnectOptions): Promise<void> {
    const greeting = await this.readGreeting();
    const head = loginHead(this.clientCapabilities(options, greeting.serverCaps));
    let secure = options.socket !== undefined;
    if (options.tls) {
      this.send(head);
      await this.startTls(options.tls, options.host ?? '127.0.0.1');
      secure = true;
    }
    const answer = (plugin: string, seed: Buffer) => authResponse(plugin, seed, options.password ?? '', secure, this.endpoint);
    const user = Buffer.from(options.user + '\0', 'utf8');
    const auth = answer(greeting.plugin, greeting.scramble);
    const parts = [head, user, lenencInt(auth.length), auth];
    if (options.database) parts.push(Buffer.from(options.database + '\0', 'utf8'));
    parts.push(Buffer.from(greeting.plugin + '\0', 'latin1'));
    this.send(Buffer.concat(parts));
    await this.finishAuthentication(answer);
  }

  /** The server's first packet: its version, this connection's id, its capabilities, the scramble and its default plugin. */
  private async readGreeting(): Promise<{ serverCaps: number; scramble: Buffer; plugin: string }> {
    const greeting = await this.reader.read();
    if (greeting[0] === 0xff) throw parseError(greeting);
    const c = new PayloadCursor(greeting);
    const protocol = c.u8();
    if (protocol !== 10) throw new ConnectError(`mariadb at ${this.endpoint}: unsupported protocol version ${protocol}`);
    // MariaDB's 5.5.5- prefix, kept for old clients, carries no information for us.
    this.serverVersion = c.nulString().replace(/^5\.5\.5-/, '');
    this.connectionId = c.u32();
    const scramble1 = c.bytes(8);
    c.skip(1);
    let serverCaps = c.u16();
    c.skip(1 + 2); // character set, status
    serverCaps |= c.u16() << 16;
    const scrambleLength = c.u8();
    c.skip(10);
    const scramble2 = c.bytes(Math.max(13, scrambleLength - 8));
    const scramble = Buffer.concat([scramble1, scramble2.subarray(0, scramble2.length - 1)]);
    const plugin = serverCaps & CLIENT.PLUGIN_AUTH ? c.nulString() : 'mysql_native_password';
    return { serverCaps, scramble, plugin };
  }

  private clientCapabilities(options: ConnectOptions, serverCaps: number): number {
    let caps =
      CLIENT.LONG_PASSWORD |
      CLIENT.LONG_FLAG |
      CLIENT.LOCAL_FILES |
      CLIENT.PROTOCOL_41 |
      CLIENT.TRANSACTIONS |
      CLIENT.SECURE_CONNECTION |
      CLIENT.MULTI_RESULTS |
      CLIENT.PLUGIN_AUTH |
      CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA;
    if (options.database) caps |= CLIENT.CONNECT_WITH_DB;
    if (options.multiStatements) caps |= CLIENT.MULTI_STATEMENTS;
    if (options.tls) {
      if (!(serverCaps & CLIENT.SSL)) throw new ConnectError(`mariadb at ${this.endpoint}: TLS was asked for but the server does not offer it`);
      caps |= CLIENT.SSL;
    }
    return caps & (serverCaps | CLIENT.SSL);
  }

  /** After the login packet: OK, an error, or a switch to another plugin with its own seed. */
  private async finishAuthentication(answer: (plugin: string, seed: Buffer) => Buffer): Promise<void> {
    for (;;) {
      const p = await this.reader.read();
      if (p[0] === 0x00) return;
      if (p[0] === 0xff) throw parseError(p);
      if (p[0] !== 0xfe) throw new ConnectError(`mariadb at ${this.endpoint}: unexpected answer during login`);
      const sw = new PayloadCursor(p, 1);
      const plugin = sw.nulString();
      const data = sw.rest();
      // Most plugins' data ends in a NUL; ed25519's is a bare 32-byte nonce, whose last byte may be 0.
      const seed = plugin !== 'client_ed25519' && data.length > 0 && data[data.length - 1] === 0 ? data.subarray(0, data.length - 1) : data;
      this.send(answer(plugin, seed));
    }
  }

  private async startTls(tls: TlsOptions, host: string): Promise<void> {
    this.reader.detach();
    const sequence = this.reader.sequence;
    const secured = tlsConnect({
      socket: this.socket as Socket,
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      rejectUnauthorized: tls.verify !== false,
      servername: /^[\d.:]+$/.test(host) ? undefined : host,
    });
    await new Promise<void>((resolve, reject) => {
      secured.once('secureConnect', resolve);
      secured.once('error', (err) => reject(new ConnectError(`mariadb at ${this.endpoint}: TLS failed: ${err.message}`)));
    });
    this.socket = secured;
    this.reader = new PacketReader(secured);
    this.reader.sequence = sequence;
  }

  private begin(sql: string | Buffer): void {
    if (this.broken) throw new StackvaultError(`mariadb connection to ${this.endpoint} is no longer usable: ${this.broken.message}`);
    if (this.busy) throw new Error('internal error: two commands at once on one database connection');
    this.busy = true;
    this.reader.sequence = 0;
    this.send(Buffer.concat([Buffer.of(COM_QUERY), typeof sql === 'string' ? Buffer.from(sql, 'utf8') : sql]));
  }

  private async readPacket(): Promise<Buffer> {
    try {
      return await this.reader.read();
    } catch (err) {
      throw this.fail(err);
    }
  }

  /** Mark the connection unusable (a half-read result or a failed transfer) and close it. */
  private fail(err: unknown): Error {
    const e = err instanceof ConnectionClosedError ? new StackvaultError(`mariadb at ${this.endpoint}: the connection was lost`) : (err as Error);
    this.broken ??= e;
    this.socket.destroy();
    return e;
  }

  /** Read the column definitions that follow a column count. */
  private async readColumns(count: number): Promise<ColumnDef[]> {
    const columns: ColumnDef[] = [];
    for (let i = 0; i < count; i++) columns.push(parseColumn(await this.readPacket()));
    const eof = await this.readPacket();
    if (!isEofPacket(eof)) throw this.fail(new StackvaultError('protocol error: no end of column definitions'));
    return columns;
  }

  /** Run a statement and buffer its whole result: for catalog queries, not for table data. Buffer text is sent as is, for character sets other than utf8. */
  async query(sql: string | Buffer): Promise<ResultSet & { ok?: OkResult }> {
    this.begin(sql);
    let result: (ResultSet & { ok?: OkResult }) | undefined;
    let error: ServerError | undefined;
    try {
      for (;;) {
        const first = await this.readPacket();
        let more = false;
        if (first[0] === 0xff) {
          error ??= parseError(first);
        } else if (first[0] === 0x00) {
          const ok = parseOk(first);
          result ??= { columns: [], rows: [], ok };
          more = (ok.status & SERVER_MORE_RESULTS_EXIST) !== 0;
        } else if (first[0] === 0xfb) {
          throw this.fail(new StackvaultError('the server asked for a local file the client did not offer'));
        } else {
          const columns = await this.readColumns(new PayloadCursor(first).lenencInt() ?? 0);
          const rows: Row[] = [];
          for (;;) {
            const p = await this.readPacket();
            if (isEofPacket(p)) {
              more = (p.readUInt16LE(3) & SERVER_MORE_RESULTS_EXIST) !== 0;
              break;
            }
            if (p[0] === 0xff) {
              error ??= parseError(p);
              break;
            }
            const c = new PayloadCursor(p);
            const row: Row = new Array(columns.length);
            for (let i = 0; i < columns.length; i++) {
              const v = c.lenencBytes();
              row[i] = v === null ? null : Buffer.from(v);
            }
            rows.push(row);
          }
          result ??= { columns, rows };
        }
        if (!more) break;
      }
    } finally {
      this.busy = false;
    }
    if (error) throw error;
    return result!;
  }

  /** Rows as strings (utf8), for catalog queries. */
  async queryStrings(sql: string): Promise<Array<Array<string | null>>> {
    const { rows } = await this.query(sql);
    return rows.map((r) => r.map((v) => (v === null ? null : v.toString('utf8'))));
  }

  /** Rows as objects keyed by column name. */
  async queryObjects(sql: string): Promise<Array<Record<string, string | null>>> {
    const { columns, rows } = await this.query(sql);
    return rows.map((r) => Object.fromEntries(columns.map((col, i) => [col.name, r[i] === null ? null : r[i]!.toString('utf8')])));
  }

  /**
   * Run `count` statements sent as one query (a connection made with multiStatements),
   * reading exactly `count` results: the server's answer to a BINLOG statement does not
   * say that more results follow, so the flag cannot be trusted to find the end. The
   * first error stops the server at that statement, and is thrown.
   */
  async executeBatch(sql: Buffer, count: number): Promise<void> {
    this.begin(sql);
    try {
      for (let i = 0; i < count; i++) {
        const first = await this.readPacket();
        if (first[0] === 0xff) throw parseError(first);
        if (first[0] === 0x00) continue;
        if (first[0] === 0xfb) throw this.fail(new StackvaultError('the server asked for a local file the client did not offer'));
        // A result set: its columns and rows are read past.
        await this.readColumns(new PayloadCursor(first).lenencInt() ?? 0);
        for (;;) {
          const p = await this.readPacket();
          if (isEofPacket(p)) break;
          if (p[0] === 0xff) throw parseError(p);
        }
      }
    } catch (err) {
      // Whatever the server still sends for this query cannot be matched to a command.
      throw err instanceof ServerError ? (this.fail(err), err) : err;
    } finally {
      this.busy = false;
    }
  }

  async execute(sql: string | Buffer): Promise<OkResult> {
    const result = await this.query(sql);
    return result.ok ?? { affectedRows: 0, warnings: 0, info: '' };
  }

  /**
   * Stream a result set: `onColumns` sees the column definitions, then every row is passed
   * to `onRow` as a range of a buffer, without copying (valid only during the call).
   * `onRow` returns true when the consumer wants to pause: the generator yields so its
   * caller can drain output.
   */
  async *streamRows(sql: string, onColumns: (columns: ColumnDef[]) => void, onRow: (buf: Buffer, start: number, end: number) => boolean): AsyncGenerator<void> {
    this.begin(sql);
    let finished = false;
    try {
      const first = await this.readPacket();
      if (first[0] === 0xff) {
        finished = true;
        throw parseError(first);
      }
      if (first[0] === 0x00) {
        finished = true;
        onColumns([]);
        return;
      }
      onColumns(await this.readColumns(new PayloadCursor(first).lenencInt() ?? 0));
      const reader = this.reader;
      for (;;) {
        if (!reader.nextPayload()) {
          try {
            await reader.wait();
          } catch (err) {
            throw this.fail(err);
          }
          continue;
        }
        const buf = reader.payload;
        const start = reader.payloadStart;
        const length = reader.payloadEnd - start;
        if (buf[start] === 0xfe && length < 9) break;
        if (buf[start] === 0xff) {
          finished = true;
          throw parseError(buf.subarray(start, reader.payloadEnd));
        }
        if (onRow(buf, start, reader.payloadEnd)) yield;
      }
      finished = true;
    } finally {
      this.busy = false;
      // A consumer that stopped early leaves rows on the wire: this connection cannot be reused.
      if (!finished) this.fail(new StackvaultError('a result was abandoned half-read'));
    }
  }

  /**
   * Run LOAD DATA LOCAL INFILE, answering the server's file request with `content`. If the
   * content fails part-way the connection is closed, so the server rolls the statement back
   * instead of committing a partial load.
   */
  async loadLocal(sql: string, content: AsyncIterable<Buffer>): Promise<OkResult> {
    this.begin(sql);
    try {
      const first = await this.readPacket();
      if (first[0] === 0xff) throw parseError(first);
      if (first[0] === 0x00) return parseOk(first);
      if (first[0] !== 0xfb) throw this.fail(new StackvaultError('protocol error: expected a local file request'));
      try {
        for await (const chunk of content) {
          // Closed since the last write (a failed read, or while this chunk was read: an interrupted restore).
          if (this.broken) throw this.broken;
          if (chunk.length === 0) continue;
          const frames: Buffer[] = [];
          this.reader.sequence = framePackets(chunk, this.reader.sequence, frames);
          for (const f of frames) {
            if (!this.socket.write(f)) await waitDrain(this.socket);
          }
        }
      } catch (err) {
        throw this.fail(err);
      }
      this.send(Buffer.alloc(0));
      const answer = await this.readPacket();
      if (answer[0] === 0xff) throw parseError(answer);
      return parseOk(answer);
    } finally {
      this.busy = false;
    }
  }

  /**
   * Read the server's binary log from a position, as a replica does: each event's bytes
   * as the log holds them. With `follow` the stream waits for new events and ends only
   * with the connection; without, it ends at the end of the log. The connection serves
   * nothing else afterwards.
   */
  async *binlogDump(file: string, position: number, serverId: number, follow: boolean): AsyncGenerator<Buffer> {
    if (this.broken) throw new StackvaultError(`mariadb connection to ${this.endpoint} is no longer usable: ${this.broken.message}`);
    if (this.busy) throw new Error('internal error: two commands at once on one database connection');
    this.busy = true;
    this.reader.sequence = 0;
    const head = Buffer.alloc(11);
    head[0] = COM_BINLOG_DUMP;
    head.writeUInt32LE(position, 1);
    head.writeUInt16LE(follow ? 0 : BINLOG_DUMP_NON_BLOCK, 5);
    head.writeUInt32LE(serverId, 7);
    this.send(Buffer.concat([head, Buffer.from(file, 'utf8')]));
    try {
      for (;;) {
        const packet = await this.readPacket();
        if (packet[0] === 0xff) throw this.fail(parseError(packet));
        if (isEofPacket(packet)) return;
        yield packet.subarray(1);
      }
    } finally {
      this.busy = false;
      // A dump not read to its end leaves the server sending: the connection is done.
      this.fail(new StackvaultError('it was reading the binary log'));
    }
  }

  async close(): Promise<void> {
    if (this.broken || this.socket.destroyed) return;
    try {
      this.reader.sequence = 0;
      this.send(Buffer.of(COM_QUIT));
      this.socket.end();
    } catch {
      /* closing anyway */
    }
    this.socket.destroy();
  }

  /** Close at once (the server aborts whatever this connection was doing). */
  destroy(): void {
    this.fail(new StackvaultError('closed'));
  }
}

function waitDrain(socket: Socket | TLSSocket): Promise<void> {
  // A closed socket says so once: after that, 'drain' and 'close' never come.
  if (socket.destroyed) return Promise.reject(new ConnectionClosedError('the connection is closed'));
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      socket.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      socket.off('drain', onDrain);
      reject(new ConnectionClosedError('the server closed the connection'));
    };
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
}

function openSocket(options: ConnectOptions, endpoint: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = options.socket ? createConnection({ path: options.socket }) : createConnection({ host: options.host ?? '127.0.0.1', port: options.port ?? 3306 });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ConnectError(`cannot connect to mariadb at ${endpoint}: no answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const reasons: Record<string, string> = {
        ECONNREFUSED: 'connection refused (is the server running, and on this port?)',
        ENOENT: 'no such socket',
        EACCES: 'permission denied',
        ENOTFOUND: 'unknown host',
        EHOSTUNREACH: 'host unreachable',
        ETIMEDOUT: 'timed out',
      };
      reject(new ConnectError(`cannot connect to mariadb at ${endpoint}: ${(err.code && reasons[err.code]) || err.message}`));
    });
  });
}

/** The fixed part of the login packet (also the whole TLS request): capabilities, packet size, character set. */
function loginHead(caps: number): Buffer {
  const head = Buffer.alloc(32);
  head.writeUInt32LE(caps >>> 0, 0);
  head.writeUInt32LE(CLIENT_MAX_PACKET, 4);
  head[8] = UTF8MB4_GENERAL_CI;
  return head;
}

/**
 * Our answer to an authentication plugin's seed. MySQL's caching_sha2_password and
 * sha256_password (and their RSA exchange) are not spoken: no MySQL server runs where
 * stackvault is tested, and a login path never tested is not one to trust with the
 * password. Such an account gets an error naming what to change.
 */
function authResponse(plugin: string, seed: Buffer, password: string, secure: boolean, endpoint: string): Buffer {
  switch (plugin) {
    case 'mysql_native_password':
      return nativePasswordResponse(password, seed);
    case 'mysql_clear_password':
    case 'dialog':
      if (!secure) throw new ConnectError(`mariadb at ${endpoint}: the server asks for the password in clear text (${plugin}); use TLS or a Unix socket`);
      return clearPasswordResponse(password);
    case 'unix_socket':
    case 'auth_socket':
      return Buffer.alloc(0);
    case 'client_ed25519':
      return ed25519Response(password, seed.subarray(0, 32));
    case 'caching_sha2_password':
    case 'sha256_password':
      throw new ConnectError(
        `mariadb at ${endpoint}: this account uses MySQL's ${plugin}, which stackvault does not speak; give the backup user mysql_native_password (ALTER USER ... IDENTIFIED WITH mysql_native_password BY '...')`,
      );
    default:
      throw new ConnectError(`mariadb at ${endpoint}: authentication plugin ${plugin} is not supported (use mysql_native_password, ed25519 or unix_socket for this user)`);
  }
}

