/**
 * One direction of a TCP control connection read as lines, in sequence order: a command split
 * across segments is put back together, a retransmission is not read twice, and a hole (a segment
 * this node never saw) throws away the line it cut, up to the next line end. A line longer than
 * MAX_LINE is not kept (the helper counts it and reads on from the next line end).
 *
 * Use: begin(seq, bytes, off, len) once per segment, then readLine() until it returns -1; the line
 * is line[0..n) without its CR LF, valid until the next readLine().
 */

/** The longest line kept (bytes, without CR LF). FTP's longest useful line (EPRT with an IPv6 address) is under 80. */
export const MAX_LINE = 512;

const LF = 0x0a;
const CR = 0x0d;

export const LineEvent = {
  NONE: 0,
  /** A hole in the stream cut a line (STREAM_GAP). */
  GAP: 1,
  /** A line over MAX_LINE was thrown away (OVERLONG). */
  OVERLONG: 2,
} as const;

export class LineStream {
  readonly line = new Uint8Array(MAX_LINE);
  /** Bytes of the line being assembled. */
  #len = 0;
  /** Sequence number of the next byte expected. */
  #next = 0;
  #started = false;
  /** Throwing bytes away up to the next LF (after a hole or an overlong line). */
  #skipping = false;
  #data: Uint8Array = this.line;
  #pos = 0;
  #end = 0;
  /** What the last begin() or readLine() found besides lines (LineEvent): check it after each call. */
  event = 0;
  /**
   * Where the line readLine() returned starts in the segment's bytes (an offset into `data` of
   * begin()), or -1 when it began in an earlier segment: a rewrite can only change a line whole
   * in the packet at hand.
   */
  lineStart = -1;
  /** Offset in data of the current line's first byte, -1 when it began before this segment. */
  #start = -1;

  /** A segment of `len` payload bytes at data[off], its first byte's sequence number `seq`. */
  begin(seq: number, data: Uint8Array, off: number, len: number): void {
    this.event = LineEvent.NONE;
    this.#data = data;
    this.#pos = this.#end = off;
    this.#start = -1;
    if (len <= 0) return;
    if (!this.#started) {
      this.#started = true;
      this.#next = seq >>> 0;
    }
    let d = (seq - this.#next) | 0;
    if (d > 0) {
      // Bytes between what we read and this segment never came through here.
      if (this.#len > 0 || !this.#skipping) this.event = LineEvent.GAP;
      this.#len = 0;
      this.#skipping = true;
      d = 0;
    }
    const skip = -d;
    if (skip >= len) return; // all of it read before (a retransmission)
    this.#pos = off + skip;
    this.#end = off + len;
    this.#next = (seq + len) >>> 0;
  }

  /** The next whole line's length (CR LF stripped; the bytes in `line`), or -1 when none is complete. */
  readLine(): number {
    this.event = LineEvent.NONE;
    const data = this.#data;
    const line = this.line;
    let p = this.#pos;
    const end = this.#end;
    while (p < end) {
      const c = data[p++];
      if (c === LF) {
        this.#pos = p;
        if (this.#skipping) {
          this.#skipping = false;
          this.#len = 0;
          continue;
        }
        let n = this.#len;
        this.#len = 0;
        this.lineStart = n === 0 ? p - 1 : this.#start;
        this.#start = -1;
        if (n > 0 && line[n - 1] === CR) n--;
        return n;
      }
      if (this.#skipping) continue;
      if (this.#len === MAX_LINE) {
        this.event = LineEvent.OVERLONG;
        this.#skipping = true;
        this.#len = 0;
        continue;
      }
      if (this.#len === 0) this.#start = p - 1;
      line[this.#len++] = c;
    }
    this.#pos = p;
    return -1;
  }
}
