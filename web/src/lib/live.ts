// Server-sent events from sluice over fetch(): GET /api/live (status once a second) and
// GET /connectors/NAME/tap (record samples). EventSource cannot send an Authorization header, so
// it would need the token in the URL (logs, history) or a cookie (sent by the browser on
// cross-site requests too); fetch() sends the same Bearer header as every other call of the page,
// and sluice never answers with CORS headers, so no other site can read the stream.

export interface SseEvent {
  event: string;
  data: string;
}

/** Incremental text/event-stream parser: feed chunks, get whole events (comments skipped). */
export class SseParser {
  private buf = '';
  push(chunk: string): SseEvent[] {
    this.buf += chunk.replace(/\r\n?/g, '\n');
    const out: SseEvent[] = [];
    let i: number;
    while ((i = this.buf.indexOf('\n\n')) >= 0) {
      const block = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length) out.push({ event, data: data.join('\n') });
    }
    return out;
  }
}

export interface StreamHandle {
  close(): void;
}

export interface StreamOpts {
  headers?: Record<string, string>;
  onEvent: (e: SseEvent) => void;
  /** Connected (true) or lost (false, with the reason); an HTTP error stops reconnecting. */
  onState?: (up: boolean, why?: string, status?: number) => void;
  /** Reconnect after a network failure (ms); 0: do not. */
  retryMs?: number;
}

/** Opens a stream and keeps it open (reconnecting after network failures) until close(). */
export function openStream(url: string, opts: StreamOpts): StreamHandle {
  let closed = false;
  let ctl: AbortController | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const retry = opts.retryMs ?? 2000;
  const run = async () => {
    ctl = new AbortController();
    try {
      const res = await fetch(url, { headers: { Accept: 'text/event-stream', ...opts.headers }, signal: ctl.signal, cache: 'no-store' });
      if (!res.ok || !res.body) {
        let msg = `HTTP ${res.status}`;
        try {
          msg = (JSON.parse(await res.text()) as { message?: string }).message ?? msg;
        } catch {
          /* not JSON */
        }
        opts.onState?.(false, msg, res.status);
        return; // a refusal is not retried: the caller decides (e.g. a token is needed)
      }
      opts.onState?.(true);
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      const parser = new SseParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const e of parser.push(dec.decode(value, { stream: true }))) opts.onEvent(e);
      }
      if (!closed) opts.onState?.(false, 'the stream ended', 200);
    } catch (e) {
      if (closed) return;
      opts.onState?.(false, (e as Error).message);
      if (retry) timer = setTimeout(() => void run(), retry);
    }
  };
  void run();
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      ctl?.abort();
    },
  };
}

// ---- GET /api/live ---------------------------------------------------------------------------

export interface LiveStage {
  name: string;
  use: string;
  in: number;
  out: number;
  rejected: number;
  dropped: number;
  retries: number;
  in_per_s?: number;
  out_per_s?: number;
  rejected_per_s?: number;
  retries_per_s?: number;
  busy?: number;
  p99_ms?: number | string | null;
  /** the pipeline's dead-letter sink (not part of the chain) */
  dead_letter?: boolean;
}

export interface LivePipeline {
  name: string;
  state: string;
  tasks: number;
  restarts: number;
  pid: number;
  lag: number | null;
  trace?: string;
  stages: LiveStage[];
}

export interface LiveStatus {
  time: number;
  pipelines: LivePipeline[];
}

/**
 * The chain as the picture draws it: the stages in order, the dead-letter sink apart (the
 * status lists it last when the pipeline has one: the stage the rejects reach), the rate on
 * each edge (what the stage before it sent on), and the stage holding the flow back — the
 * busiest one (share of the tasks' time spent in it; the chain is synchronous, so that stage
 * sets the pace of its source), flagged as backpressured when it is busy most of the time or
 * retrying.
 */
export interface Flow {
  stages: LiveStage[];
  deadLetter: LiveStage | null;
  edges: (number | null)[]; // edges[i]: records/s from stages[i] to stages[i + 1]
  rejectedPerS: number | null;
  rejected: number;
  slowest: string | null;
  backpressured: boolean;
}

export function flowOf(p: LivePipeline): Flow {
  const all = p.stages ?? [];
  const stages = all.filter((s) => !s.dead_letter);
  const dlq = all.find((s) => s.dead_letter) ?? null;
  const edges = stages.slice(0, -1).map((s) => (typeof s.out_per_s === 'number' ? s.out_per_s : null));
  const rej = stages.reduce<number | null>((a, s) => (typeof s.rejected_per_s === 'number' ? (a ?? 0) + s.rejected_per_s : a), null);
  let slowest: LiveStage | null = null;
  for (const s of stages) if (typeof s.busy === 'number' && s.busy > 0 && (!slowest || s.busy > (slowest.busy ?? 0))) slowest = s;
  // Batches shorter than the host's millisecond clock add no busy time: then the stage with the
  // slowest batches (p99) is the one that holds the flow back.
  const p99 = (s: LiveStage) => (typeof s.p99_ms === 'number' ? s.p99_ms : s.p99_ms === '+Inf' ? Infinity : -1);
  if (!slowest) for (const s of stages) if (p99(s) >= 0 && (!slowest || p99(s) > p99(slowest))) slowest = s;
  const retrying = stages.some((s) => (s.retries_per_s ?? 0) > 0);
  return {
    stages,
    deadLetter: dlq,
    edges,
    rejectedPerS: rej,
    rejected: stages.reduce((a, s) => a + (s.rejected ?? 0), 0),
    slowest: slowest?.name ?? null,
    backpressured: retrying || (slowest?.busy ?? 0) >= 0.8,
  };
}

