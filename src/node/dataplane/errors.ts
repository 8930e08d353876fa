/**
 * Data plane errors: one class, a stable `code` per failure, a message that says what to do.
 * Codes (for logs and the control API):
 *   DP_BAD_OPTIONS     the options are wrong (queue number, interface or chain name, port)
 *   DP_NOT_ROOT        installing kernel rules and opening a queue need root (CAP_NET_ADMIN)
 *   DP_BINDING         the NFQUEUE addon (native/nfqueue) is missing, did not load, or is stale
 *   DP_QUEUE_OPEN      the kernel refused the queue (taken by another process, no nfnetlink_queue)
 *   DP_RULES           iptables-restore refused the rule batch (the output is in the message)
 *   DP_STATE           start/stop called in the wrong state
 *   DP_ROUTES          the routing table could not be read at start (ip -j route)
 *   DP_SYSCTL          accept_local could not be set on (or restored to) a data interface
 *   DP_IP              the long-lived `ip -batch` (ip-batch.ts) could not run or did not answer
 */
export type DataplaneErrorCode = 'DP_BAD_OPTIONS' | 'DP_NOT_ROOT' | 'DP_BINDING' | 'DP_QUEUE_OPEN' | 'DP_RULES' | 'DP_STATE' | 'DP_ROUTES' | 'DP_SYSCTL' | 'DP_IP';

export class DataplaneError extends Error {
  readonly code: DataplaneErrorCode;

  constructor(code: DataplaneErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DataplaneError';
    this.code = code;
  }
}
