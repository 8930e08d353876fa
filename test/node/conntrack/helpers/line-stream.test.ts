import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LineEvent, LineStream, MAX_LINE } from '../../../../src/node/conntrack/helpers/line-stream.js';

/** Feed segments [seq, text] and collect lines and events. */
function feed(segs: [number, string][]): { lines: string[]; events: number[] } {
  const s = new LineStream();
  const lines: string[] = [];
  const events: number[] = [];
  for (const [seq, text] of segs) {
    const b = Buffer.from(text, 'latin1');
    s.begin(seq, b, 0, b.length);
    if (s.event) events.push(s.event);
    for (;;) {
      const n = s.readLine();
      if (s.event) events.push(s.event);
      if (n < 0) break;
      lines.push(Buffer.from(s.line.subarray(0, n)).toString('latin1'));
    }
  }
  return { lines, events };
}

describe('LineStream', () => {
  it('puts a command split across segments back together', () => {
    expect(feed([[100, 'PORT 10,50'], [110, ',1,10,200,21\r\nNOOP\r'], [129, '\n']]).lines).toEqual(['PORT 10,50,1,10,200,21', 'NOOP']);
  });

  it('reads a retransmission once, and the new part of an overlapping one', () => {
    expect(feed([[0, 'USER a\r\n'], [0, 'USER a\r\n'], [3, 'R a\r\nPASS b\r\n']]).lines).toEqual(['USER a', 'PASS b']);
  });

  it('throws away the line a hole cut, and reads on from the next line end', () => {
    const r = feed([[0, 'PORT 10,50,'], [50, '1,10,200,21\r\nNOOP\r\n']]);
    expect(r.lines).toEqual(['NOOP']);
    expect(r.events).toEqual([LineEvent.GAP]);
  });

  it('does not keep a line over MAX_LINE, and says so once', () => {
    const long = 'X'.repeat(MAX_LINE + 10);
    const r = feed([[0, long.slice(0, 300)], [300, long.slice(300) + '\r\nQUIT\r\n']]);
    expect(r.lines).toEqual(['QUIT']);
    expect(r.events).toEqual([LineEvent.OVERLONG]);
    expect(feed([[0, 'Y'.repeat(MAX_LINE) + '\n']]).lines).toEqual(['Y'.repeat(MAX_LINE)]);
  });

  it('wraps around the sequence space', () => {
    expect(feed([[0xfffffffa, 'NOOP\r\nQU'], [2, 'IT\r\n']]).lines).toEqual(['NOOP', 'QUIT']);
  });

  it('property: any cut of a stream into segments, with retransmissions, reads the same lines', () => {
    const lineArb = fc.stringMatching(/^[ -~]{0,40}$/);
    fc.assert(
      fc.property(fc.array(lineArb, { minLength: 1, maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 0xffffffff }), fc.array(fc.boolean(), { maxLength: 40 }), (lines, cuts, isn, again) => {
        const text = lines.map((l) => l + '\r\n').join('');
        const segs: [number, string][] = [];
        let p = 0;
        for (let i = 0; p < text.length; i++) {
          const n = cuts[i % cuts.length];
          const seg: [number, string] = [(isn + p) >>> 0, text.slice(p, p + n)];
          segs.push(seg);
          if (again[i]) segs.push(seg);
          p += n;
        }
        expect(feed(segs).lines).toEqual(lines);
      }),
    );
  });
});
