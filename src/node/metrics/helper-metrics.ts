/**
 * Connection helpers' metrics: expectations held, connections expected and announcements
 * rewritten for NAT per helper, and announcements refused per helper and reason (every FTP
 * reason, also at zero, so alerts need no absent()).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Engine } from '../engine/index.js';
import { ftpRefusalNames } from '../conntrack/helpers/index.js';

export function registerHelperMetrics(reg: Registry, engine: Engine): void {
  const { ftp, tftp } = engine.helpers;
  new Gauge({
    name: 'twinwall_expectations', help: 'Expectations held: connections a helper announced that may open as RELATED.', registers: [reg],
    collect() {
      this.set(engine.conntrack.expectations.count);
    },
  });
  new Counter({
    name: 'twinwall_helper_expected_total', help: 'Connections expected by connection helpers (FTP data, TFTP replies).', labelNames: ['helper'], registers: [reg],
    collect() {
      this.reset();
      this.inc({ helper: 'ftp' }, ftp.expected);
      this.inc({ helper: 'tftp' }, tftp.expected);
    },
  });
  new Counter({
    name: 'twinwall_helper_rewritten_total', help: 'Announcements a helper rewrote for NAT (payload resized, sequence numbers adjusted).', labelNames: ['helper'], registers: [reg],
    collect() {
      this.reset();
      this.inc({ helper: 'ftp' }, ftp.rewritten);
    },
  });
  new Counter({
    name: 'twinwall_helper_errors_total', help: 'Announcements or messages a helper refused (no expectation made), by reason.', labelNames: ['helper', 'reason'], registers: [reg],
    collect() {
      this.reset();
      for (let i = 1; i < ftpRefusalNames.length; i++) this.inc({ helper: 'ftp', reason: ftpRefusalNames[i] }, ftp.refused[i]);
      this.inc({ helper: 'tftp', reason: 'truncated' }, tftp.truncated);
      this.inc({ helper: 'tftp', reason: 'expect_limit' }, tftp.expectLimit);
    },
  });
}
