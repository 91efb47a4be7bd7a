/**
 * The inner loop of the chunker: the gear rolling hash over a range of bytes until its
 * masked bits are all zero. Run as WebAssembly where the runtime can give it memory: the
 * same loop in JavaScript hashed about 0.5 GB/s in a backup (bounds checks on two typed
 * arrays per byte, and recompiled as the workers warmed up), the WebAssembly one 1.6 GB/s.
 * The JavaScript loop stays as the fallback and as the reference the tests hold it to.
 */
export interface GearScanner {
  /**
   * Hashes buf[from, to) onward from `h`; returns the index just past the first byte whose
   * hash has no bit of `mask` set, or -1 when none does. Either way `h` is then the hash
   * after the last byte hashed, so a scan can go on where one stopped.
   */
  scan(buf: Uint8Array, from: number, to: number, mask: number, h: number): number;
  readonly h: number;
  /**
   * A buffer of `bytes` this scanner hashes in place, without a copy: the chunker reads
   * files through it. Its own memory; ask once and keep it.
   */
  window(bytes: number): Buffer;
}

export function gearScanner(gear: Int32Array): GearScanner {
  return WasmGearScanner.create(gear) ?? new JsGearScanner(gear);
}

export class JsGearScanner implements GearScanner {
  h = 0;

  constructor(private readonly gear: Int32Array) {}

  scan(buf: Uint8Array, from: number, to: number, mask: number, h: number): number {
    const gear = this.gear;
    for (let i = from; i < to; ) {
      h = ((h << 1) + gear[buf[i]!]!) | 0;
      i++;
      if ((h & mask) === 0) {
        this.h = h;
        return i;
      }
    }
    this.h = h;
    return -1;
  }

  window(bytes: number): Buffer {
    return Buffer.allocUnsafeSlow(bytes);
  }
}

/** The one WebAssembly API used here; TypeScript declares it only with the DOM's types. */
declare const WebAssembly: {
  Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer; grow(pages: number): number };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
};

const PAGE = 64 * 1024;
/** Memory layout: the gear table (256 × i32) at 0, a scratch area for bytes from other buffers, then the window. */
const SCRATCH_AT = 1024;
const SCRATCH_BYTES = PAGE - SCRATCH_AT;
const WINDOW_AT = PAGE;

/**
 * `scan(from, to, mask, h) -> end` over the module's memory: the index past the cut, or 0
 * for none (0 holds the gear table, never data). The hash it ended with is left in the
 * exported global `h`. Hand-assembled: the function is 60 bytes, not worth a toolchain.
 * The loop runs at least once: the caller passes from < to.
 */
const MODULE_BYTES = Uint8Array.from([
  ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
  ...section(1, [0x01, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x01, 0x7f]), // type 0: (i32 i32 i32 i32) -> i32
  ...section(2, [0x01, ...name('env'), ...name('memory'), 0x02, 0x00, 0x01]), // import env.memory, at least 1 page
  ...section(3, [0x01, 0x00]), // function 0 has type 0
  ...section(6, [0x01, 0x7f, 0x01, 0x41, 0x00, 0x0b]), // global 0: mutable i32 = 0
  ...section(7, [0x02, ...name('scan'), 0x00, 0x00, ...name('h'), 0x03, 0x00]), // exports: scan = func 0, h = global 0
  ...section(10, [0x01, ...sized([
    0x00, // no locals beyond the parameters: 0 from, 1 to, 2 mask, 3 h
    0x03, 0x40, //                loop
    0x20, 0x03, 0x41, 0x01, 0x74, //   h << 1
    0x20, 0x00, 0x2d, 0x00, 0x00, //   mem8[from]
    0x41, 0x02, 0x74, 0x28, 0x02, 0x00, //   mem32[byte * 4]: the gear table
    0x6a, 0x21, 0x03, //              h = (h << 1) + gear[byte]
    0x20, 0x00, 0x41, 0x01, 0x6a, 0x21, 0x00, //   from += 1
    0x20, 0x03, 0x20, 0x02, 0x71, 0x45, //   (h & mask) == 0
    0x04, 0x40, //                    if
    0x20, 0x03, 0x24, 0x00, //          global h = h
    0x20, 0x00, 0x0f, //                return from
    0x0b, //                          end
    0x20, 0x00, 0x20, 0x01, 0x49, 0x0d, 0x00, //   br_if loop (from < to)
    0x0b, //                          end loop
    0x20, 0x03, 0x24, 0x00, //        global h = h
    0x41, 0x00, //                    return 0
    0x0b,
  ])]),
]);

function section(id: number, content: number[]): number[] {
  return [id, ...sized(content)];
}

function sized(content: number[]): number[] {
  return [...leb128(content.length), ...content];
}

function name(text: string): number[] {
  return sized([...Buffer.from(text, 'utf8')]);
}

function leb128(n: number): number[] {
  const out: number[] = [];
  do {
    const low = n & 0x7f;
    n >>>= 7;
    out.push(n ? low | 0x80 : low);
  } while (n);
  return out;
}

let compiled: object | undefined;

export class WasmGearScanner implements GearScanner {
  h = 0;
  private bytes: Uint8Array;
  private windowBytes = 0;

  private constructor(
    private readonly memory: { buffer: ArrayBuffer; grow(pages: number): number },
    private readonly run: (from: number, to: number, mask: number, h: number) => number,
    private readonly lastH: { value: number },
  ) {
    this.bytes = new Uint8Array(memory.buffer);
  }

  /** null where WebAssembly cannot run or get memory (each memory reserves address space, which ulimit -v may refuse). */
  static create(gear: Int32Array): WasmGearScanner | null {
    try {
      compiled ??= new WebAssembly.Module(MODULE_BYTES);
      const memory = new WebAssembly.Memory({ initial: 1 });
      const { exports } = new WebAssembly.Instance(compiled, { env: { memory } });
      // The module reads the table little-endian whatever this machine's byte order.
      const table = new DataView(memory.buffer, 0, 1024);
      gear.forEach((g, i) => table.setInt32(i * 4, g, true));
      return new WasmGearScanner(memory, exports.scan as WasmGearScanner['run'], exports.h as { value: number });
    } catch {
      return null;
    }
  }

  scan(buf: Uint8Array, from: number, to: number, mask: number, h: number): number {
    if (from >= to) {
      this.h = h;
      return -1;
    }
    if (buf.buffer === this.memory.buffer) {
      const at = buf.byteOffset;
      const end = this.run(at + from, at + to, mask, h);
      this.h = this.lastH.value;
      return end === 0 ? -1 : end - at;
    }
    // Bytes elsewhere are hashed a scratch area at a time: the copy costs a tenth of the hashing.
    for (let i = from; i < to; ) {
      const piece = Math.min(SCRATCH_BYTES, to - i);
      this.bytes.set(buf.subarray(i, i + piece), SCRATCH_AT);
      const end = this.run(SCRATCH_AT, SCRATCH_AT + piece, mask, h);
      h = this.lastH.value;
      if (end !== 0) {
        this.h = h;
        return i + end - SCRATCH_AT;
      }
      i += piece;
    }
    this.h = h;
    return -1;
  }

  window(bytes: number): Buffer {
    if (this.windowBytes > 0) throw new Error('a gear scanner has one window');
    try {
      this.memory.grow(Math.ceil(bytes / PAGE));
    } catch {
      return Buffer.allocUnsafeSlow(bytes);
    }
    this.windowBytes = bytes;
    this.bytes = new Uint8Array(this.memory.buffer);
    return Buffer.from(this.memory.buffer, WINDOW_AT, bytes);
  }
}
