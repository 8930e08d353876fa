/**
 * Connection helpers by number: what a raw-chain rule attaches to a new entry (`target: { helper:
 * ftp }`, as iptables' `-j CT --helper ftp`), kept in the entry's status word (CT_HELPER_SHIFT).
 */
import { Proto } from '../../packet/fields.js';

export const HelperId = {
  NONE: 0,
  FTP: 1,
  TFTP: 2,
} as const;

/** Helper names by id (rule targets, metric labels, `ct list`). */
export const helperNames = ['none', 'ftp', 'tftp'] as const;
/** The transport protocol each helper reads. */
export const helperProto = [0, Proto.TCP, Proto.UDP] as const;

/** The helper's id in an entry's status word: bits 8..11. */
export const CT_HELPER_SHIFT = 8;
export const CT_HELPER_MASK = 0xf << CT_HELPER_SHIFT;

export function helperIdByName(name: string): number {
  const i = (helperNames as readonly string[]).indexOf(name);
  return i > 0 ? i : -1;
}
