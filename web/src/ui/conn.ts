// The connection indicator in the header and the "disconnected" banner, shared by both pages.

import type { ConnState, Connection } from '../lib/api';
import { formatClock } from '../lib/format';
import { $, setText } from './dom';

const TEXT: Record<ConnState, string> = {
  connecting: 'Connecting…',
  connected: 'Live',
  disconnected: 'Disconnected',
};

/** Returns the onChange handler for a Connection: updates the pill and the banner. */
export function connectionView(what: string, where: () => string): (s: ConnState, c: Connection) => void {
  const pill = $('#conn');
  const banner = $('#banner');
  return (s, c) => {
    pill.dataset.state = s;
    setText($('.conn-text', pill), `${what}: ${TEXT[s]}`);
    document.body.classList.toggle('stale', s === 'disconnected');
    if (s === 'disconnected') {
      const since = c.lastOkMs ? ` Showing what was received up to ${formatClock(c.lastOkMs)}.` : '';
      banner.textContent = `Disconnected from ${what} (${where()}).${since} Retrying every second…`;
      banner.hidden = false;
      banner.dataset.state = 'disconnected';
    } else {
      banner.hidden = true;
      banner.textContent = '';
      banner.dataset.state = s;
    }
  };
}
