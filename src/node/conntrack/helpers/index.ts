/**
 * Connection helpers: a raw-chain rule attaches one to a new entry (its id in the entry's status
 * word); the engine hands each accepted packet with payload of such an entry to it, after NAT of
 * the headers and before the verdict. A helper reads its protocol's control messages and expects
 * the connections they announce (RELATED, see ../expect.ts): FTP's data connections, TFTP's replies.
 */
import type { PacketView } from '../../packet/view.js';
import type { ConntrackTable } from '../table.js';
import type { ExpectationTable } from '../expect.js';
import type { SeqAdjustments } from '../seqadj.js';
import { FtpHelper, type OutsidePorts } from './ftp.js';
import { HelperId } from './ids.js';
import { TftpHelper } from './tftp.js';

export { HelperId, helperNames, helperIdByName, CT_HELPER_MASK, CT_HELPER_SHIFT } from './ids.js';
export { FtpHelper, FTP_EXPECT_TIMEOUT_MS, type OutsidePorts } from './ftp.js';
export { TftpHelper, TFTP_EXPECT_TIMEOUT_MS } from './tftp.js';
export { FtpRefusal, ftpRefusalNames } from './ftp-parse.js';

export class ConnHelpers {
  readonly ftp: FtpHelper;
  readonly tftp: TftpHelper;

  constructor(table: ConntrackTable, expectations: ExpectationTable, ports: OutsidePorts, readonly seqadj: SeqAdjustments) {
    this.ftp = new FtpHelper(table, expectations, ports, seqadj);
    this.tftp = new TftpHelper(table, expectations);
  }

  /**
   * An accepted packet with payload of an entry whose helper is `id`. Returns the packet to send
   * instead (a NAT rewrite of its payload, from the IP header on), or null.
   */
  packet(id: number, pkt: PacketView, slot: number, dir: number, now: number): Buffer | null {
    if (id === HelperId.FTP) return this.ftp.packet(pkt, slot, dir, now);
    if (id === HelperId.TFTP) this.tftp.packet(pkt, slot, dir, now);
    return null;
  }

  /** Drop the state of entries that ended (the engine's periodic tick). */
  sweep(ids: Uint32Array): void {
    this.ftp.sweep();
    this.seqadj.sweep(ids);
  }
}
