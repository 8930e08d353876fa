/**
 * ip and net sets answer by scanning a short list or probing the hash table (one probe per prefix
 * length): both must agree with the plain definition, "some element covers the address".
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { prefixMask } from '../../../src/node/packet/address.js';
import { CompiledSet, SetType, type SetElement } from '../../../src/node/filter/sets.js';

// Few distinct values per word, so that random addresses often fall inside random elements.
const word = fc.constantFrom(0, 0x0a000000, 0x0a010000, 0x0a010203, 0xc0000201, 0xfd000000, 0xffffffff, 0x80000000);

const elementArb = (type: number) =>
  fc.record({ v6: fc.boolean(), w: fc.tuple(word, word, word, word), p4: fc.integer({ min: 0, max: 32 }),
    p6: fc.integer({ min: 0, max: 128 }) }).map(({ v6, w, p4, p6 }): SetElement => {
    const family = v6 ? 6 : 4;
    const prefix = type === SetType.IP ? (v6 ? 128 : 32) : v6 ? p6 : p4;
    const m = prefixMask(family, prefix);
    const words = Uint32Array.from([0, 1, 2, 3], (k) => (v6 || k === 0 ? w[k] & m[k] : 0) >>> 0);
    return { family, words, prefix, proto: 0, portLo: 0, portHi: 0 };
  });

const addrArb = fc.record({ v6: fc.boolean(), w: fc.tuple(word, word, word, word) }).map(({ v6, w }) => ({
  family: v6 ? 6 : 4,
  words: Uint32Array.from([0, 1, 2, 3], (k) => (v6 || k === 0 ? w[k] : 0)),
}));

function covers(e: SetElement, family: number, a: Uint32Array): boolean {
  if (e.family !== family) return false;
  const m = prefixMask(e.family, e.prefix);
  return [0, 1, 2, 3].every((k) => ((a[k] & m[k]) >>> 0) === e.words[k]);
}

describe('ip and net set lookups', () => {
  for (const [name, type] of [['ip', SetType.IP], ['net', SetType.NET]] as const) {
    // Up to 8 elements per family are scanned, more are hashed: sizes on both sides of that.
    it(`${name} sets of every size agree with the definition`, () => {
      fc.assert(
        fc.property(fc.array(elementArb(type), { maxLength: 40 }), fc.array(addrArb, { minLength: 1, maxLength: 20 }),
          (elements, addrs) => {
            const set = new CompiledSet('s', type, elements);
            for (const { family, words } of addrs) {
              expect(set.hasAddr(family, words)).toBe(elements.some((e) => covers(e, family, words)));
            }
          }),
        { numRuns: 300 },
      );
    });
  }

  it('a family-0 address (unparsable packet) is in no set', () => {
    const e: SetElement = { family: 4, words: Uint32Array.of(0, 0, 0, 0), prefix: 0, proto: 0, portLo: 0, portHi: 0 };
    expect(new CompiledSet('any', SetType.NET, [e]).hasAddr(4, Uint32Array.of(1, 0, 0, 0))).toBe(true);
    expect(new CompiledSet('any', SetType.NET, [e]).hasAddr(0, Uint32Array.of(1, 0, 0, 0))).toBe(false);
  });
});
