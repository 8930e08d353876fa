/**
 * Connection helpers: a raw-chain rule attaches one to a new entry (its id in the entry's status
 * word); the engine hands each accepted packet with payload of such an entry to it, after NAT of
 * the headers and before the verdict. A helper reads its protocol's control messages and expects
 * the connections they announce (RELATED, see ../expect.ts): FTP's data connections, TFTP's replies.
 */
import type { PacketFields } from '../../packet/fields.js';
import type { ConntrackTable } from '../table.js';
import type { ExpectationTable } from '../expect.js';
import { FtpHelper } from './ftp.js';
import { HelperId } from './ids.js';
import { TftpHelper } from './tftp.js';

export { HelperId, helperNames, helperIdByName, CT_HELPER_MASK, CT_HELPER_SHIFT } from './ids.js';
export { FtpHelper, FTP_EXPECT_TIMEOUT_MS } from './ftp.js';
export { TftpHelper, TFTP_EXPECT_TIMEOUT_MS } from './tftp.js';
export { FtpRefusal, ftpRefusalNames } from './ftp-parse.js';

export class ConnHelpers {
  readonly ftp: FtpHelper;
  readonly tftp: TftpHelper;

  constructor(table: ConntrackTable, expectations: ExpectationTable) {
    this.ftp = new FtpHelper(table, expectations);
    this.tftp = new TftpHelper(table, expectations);
  }

  /** An accepted packet with payload of an entry whose helper is `id`. */
  packet(id: number, pkt: PacketFields & { buffer: Uint8Array }, slot: number, dir: number, now: number): void {
    if (id === HelperId.FTP) this.ftp.packet(pkt, slot, dir, now);
    else if (id === HelperId.TFTP) this.tftp.packet(pkt, slot, dir, now);
  }

  /** Drop the state of entries that ended (the engine's periodic tick). */
  sweep(): void {
    this.ftp.sweep();
  }
}
