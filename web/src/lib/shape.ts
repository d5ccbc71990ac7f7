// Turning the data API's answers into what the dashboard draws. Pure functions, unit-tested.
//
// The supervisor answers GET /api/query/{name} with {name, columns, rows: [{col: value}]}.
// PostgreSQL numeric and bigint columns may arrive as strings; timestamps as PostgreSQL text
// ("2024-03-03 14:05:00+00") or ISO 8601; both are parsed here.

export type Cell = string | number | boolean | null | undefined;
export type Row = Record<string, Cell>;
export interface QueryResult {
  name?: string;
  columns?: string[];
  rows: Row[];
}

/** A number from a JSON value: numbers pass, numeric strings are parsed, anything else is null. */
export function toNumber(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string') {
    const s = v.trim();
    if (s === '' || !/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return null;
    const n = Number(s);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

/** Milliseconds since the epoch from a number (ms), or a PostgreSQL / ISO timestamp string. */
export function toTimeMs(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v !== 'string' || !v.trim()) return null;
  let s = v.trim();
  if (/^\d+$/.test(s)) return Number(s);
  // PostgreSQL text output: "2024-03-03 14:05:00.123+00" or "+05:30"; make it ISO 8601.
  s = s.replace(/^(\d{4}-\d{2}-\d{2}) (\d)/, '$1T$2');
  s = s.replace(/([+-]\d{2})$/, '$1:00');
  s = s.replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : null;
}

export function ratio(num: number | null, den: number | null): number | null {
  if (num === null || den === null || !Number.isFinite(num) || !Number.isFinite(den) || den <= 0) return null;
  return num / den;
}

// ---- headline figures --------------------------------------------------------------------

/** The four headline timeframes, in display order. */
export const TIMEFRAMES = [
  { id: '1m', label: 'This minute', minutes: 1 },
  { id: '15m', label: 'Last 15 min', minutes: 15 },
  { id: '1h', label: 'Last hour', minutes: 60 },
  { id: '24h', label: 'Last 24 h', minutes: 1440 },
] as const;
export type TimeframeId = (typeof TIMEFRAMES)[number]['id'];

export interface Headline {
  timeframe: TimeframeId;
  label: string;
  /** start of the range (the current minute's start for '1m'), ms */
  rangeStartMs: number | null;
  /** seconds of the range that have elapsed (divisor of the order rate) */
  elapsedS: number | null;
  events: number;
  pageViews: number;
  orders: number;
  paymentFailed: number;
  refunds: number;
  gmv: number;
  refundAmount: number;
  rejected: number;
  distinctUsers: number | null;
  /** orders per minute over the elapsed part of the range */
  orderRate: number | null;
  /** orders / (orders + payment_failed) */
  successRate: number | null;
  /** gmv / orders */
  avgOrderValue: number | null;
  /** orders / page views */
  conversion: number | null;
}

function num0(v: Cell): number {
  return toNumber(v) ?? 0;
}

/** Builds one Headline from a row of the `headline` query (one row per timeframe). */
export function headlineFromRow(row: Row, distinctUsers: number | null = null): Headline | null {
  const id = String(row.timeframe ?? '');
  const tf = TIMEFRAMES.find((t) => t.id === id);
  if (!tf) return null;
  const orders = num0(row.orders);
  const paymentFailed = num0(row.payment_failed);
  const pageViews = num0(row.page_views);
  const gmv = num0(row.gmv);
  const elapsedS = toNumber(row.elapsed_s);
  const minutes = elapsedS !== null ? Math.max(elapsedS, 1) / 60 : tf.minutes;
  return {
    timeframe: tf.id,
    label: tf.label,
    rangeStartMs: toNumber(row.range_start_ms) ?? toTimeMs(row.range_start),
    elapsedS,
    events: num0(row.events),
    pageViews,
    orders,
    paymentFailed,
    refunds: num0(row.refunds),
    gmv,
    refundAmount: num0(row.refund_amount),
    rejected: num0(row.rejected),
    distinctUsers,
    orderRate: orders / minutes,
    successRate: ratio(orders, orders + paymentFailed),
    avgOrderValue: ratio(gmv, orders),
    conversion: ratio(orders, pageViews),
  };
}

/** Distinct users per timeframe from the `distinct_users` query: rows {timeframe, users}. */
export function distinctUsersByTimeframe(res: QueryResult | null): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of res?.rows ?? []) {
    const n = toNumber(r.users);
    if (r.timeframe != null && n !== null) out.set(String(r.timeframe), n);
  }
  return out;
}

/** All headline timeframes in display order; a timeframe missing from the answer is null. */
export function shapeHeadline(res: QueryResult | null, users?: Map<string, number>): (Headline | null)[] {
  const byId = new Map<string, Row>();
  for (const r of res?.rows ?? []) byId.set(String(r.timeframe ?? ''), r);
  return TIMEFRAMES.map((tf) => {
    const row = byId.get(tf.id);
    return row ? headlineFromRow(row, users?.get(tf.id) ?? null) : null;
  });
}

/** The database's idea of "now" (start of the current minute), if the headline answer has it. */
export function currentMinuteMs(res: QueryResult | null): number | null {
  for (const r of res?.rows ?? []) {
    const v = toNumber(r.current_minute_ms) ?? toTimeMs(r.current_minute);
    if (v !== null) return v;
  }
  return null;
}

/** True when nothing at all has been recorded in the last 24 h (the "no data yet" state). */
export function isEmpty(h: (Headline | null)[]): boolean {
  return h.every((x) => x === null || (x.events === 0 && x.orders === 0 && x.rejected === 0));
}

// ---- time series -------------------------------------------------------------------------

export const BUCKETS = [
  { id: '1m', label: '1-minute buckets', title: 'Last hour', ms: 60_000, points: 60, query: 'series_1m' },
  { id: '15m', label: '15-minute buckets', title: 'Last 12 hours', ms: 900_000, points: 48, query: 'series_15m' },
  { id: '1h', label: '1-hour buckets', title: 'Last 48 hours', ms: 3_600_000, points: 48, query: 'series_1h' },
  { id: '24h', label: '24-hour buckets', title: 'Last 30 days', ms: 86_400_000, points: 30, query: 'series_24h' },
] as const;
export type BucketId = (typeof BUCKETS)[number]['id'];

export interface Series {
  /** bucket starts, ms, ascending, evenly spaced */
  t: number[];
  gmv: number[];
  orders: number[];
  /** null where a bucket had neither a purchase nor a failed payment */
  success: (number | null)[];
}

/**
 * Lays series rows (window_start, orders, gmv, payment_failed) on a regular grid of `points`
 * buckets of `bucketMs` ending with the bucket that contains `nowMs`. Buckets without a row are
 * zero (no orders, no GMV) with an unknown success rate; rows outside the grid are ignored.
 * Buckets are aligned to the Unix epoch (UTC), as window-kpi aligns its windows.
 */
export function shapeSeries(res: QueryResult | null, bucketMs: number, points: number, nowMs: number): Series {
  const end = Math.floor(nowMs / bucketMs) * bucketMs;
  const start = end - (points - 1) * bucketMs;
  const s: Series = { t: [], gmv: [], orders: [], success: [] };
  for (let i = 0; i < points; i++) {
    s.t.push(start + i * bucketMs);
    s.gmv.push(0);
    s.orders.push(0);
    s.success.push(null);
  }
  for (const r of res?.rows ?? []) {
    const t = toNumber(r.window_start_ms) ?? toTimeMs(r.window_start);
    if (t === null) continue;
    const i = Math.round((t - start) / bucketMs);
    if (i < 0 || i >= points || start + i * bucketMs !== t) continue;
    const orders = num0(r.orders);
    const failed = num0(r.payment_failed);
    s.orders[i] = orders;
    s.gmv[i] = num0(r.gmv);
    s.success[i] = ratio(orders, orders + failed);
  }
  return s;
}
