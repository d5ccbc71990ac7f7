// HTTP helpers: JSON with a timeout, and a connection tracker that turns repeated network
// failures into a visible "disconnected" state.

export class HttpError extends Error {
  constructor(
    public status: number,
    public body: unknown,
    message: string,
  ) {
    super(message);
  }
}

/** A network-level failure (refused, reset, timed out): the server is not reachable. */
export class NetworkError extends Error {}

export interface RequestOpts {
  method?: string;
  body?: unknown;
  timeoutMs?: number;
  accept?: 'json' | 'text';
  /** Extra request headers (e.g. Authorization for sluice; see auth.ts). */
  headers?: Record<string, string>;
}

export async function request<T = unknown>(url: string, opts: RequestOpts = {}): Promise<T> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), opts.timeoutMs ?? 4000);
  let res: Response;
  try {
    res = await fetch(url, {
      method: opts.method ?? 'GET',
      headers: { ...(opts.body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...opts.headers },
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      signal: ctl.signal,
      cache: 'no-store',
    });
  } catch (e) {
    throw new NetworkError(ctl.signal.aborted ? `${url}: timed out` : `${url}: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  const text = await res.text().catch(() => '');
  let body: unknown = text;
  if (opts.accept !== 'text' && text) {
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON: keep the text */
    }
  }
  if (!res.ok) {
    const msg =
      (body && typeof body === 'object' && ((body as { message?: string }).message ?? (body as { error?: string }).error)) ||
      `HTTP ${res.status}`;
    throw new HttpError(res.status, body, String(msg));
  }
  return (opts.accept === 'text' ? text : body) as T;
}

export type ConnState = 'connecting' | 'connected' | 'disconnected';

/**
 * Tracks whether a server answers. `failuresToDisconnect` network failures in a row make it
 * "disconnected"; one answer (any HTTP status) makes it "connected" again.
 */
export class Connection {
  private failures = 0;
  state: ConnState = 'connecting';
  lastOkMs: number | null = null;
  lastError = '';
  constructor(
    private onChange: (s: ConnState, c: Connection) => void,
    private failuresToDisconnect = 2,
  ) {}

  ok(nowMs = Date.now()): void {
    this.failures = 0;
    this.lastOkMs = nowMs;
    this.set('connected');
  }

  /** Reports the outcome of a request; returns true when the error was a network failure. */
  fail(err: unknown): boolean {
    if (err instanceof HttpError) {
      this.ok();
      return false;
    }
    this.lastError = (err as Error)?.message ?? String(err);
    this.failures++;
    if (this.failures >= this.failuresToDisconnect) this.set('disconnected');
    return true;
  }

  private set(s: ConnState): void {
    if (s === this.state) return;
    this.state = s;
    this.onChange(s, this);
  }
}

/** Runs `fn` now and then every `ms` after each run ends (never two at once). */
export function every(ms: number, fn: () => Promise<void>): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = async () => {
    try {
      await fn();
    } catch (e) {
      console.error(e);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  void tick();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

export interface AppConfig {
  generator_url: string;
  /** false when sluice runs with --no-auth: changes need no token */
  auth?: boolean;
  version?: string;
  currency?: string;
}

export const DEFAULT_GENERATOR_URL = 'http://127.0.0.1:7070';

/** The generator's base URL: ?gen=URL overrides; else /api/config; else the default. */
export function generatorUrl(cfg: Partial<AppConfig> | null, search = ''): string {
  const q = new URLSearchParams(search).get('gen');
  const u = q || cfg?.generator_url || DEFAULT_GENERATOR_URL;
  return u.replace(/\/+$/, '');
}
