import { describe, expect, it } from 'vitest';
import {
  currentMinuteMs,
  distinctUsersByTimeframe,
  headlineFromRow,
  isEmpty,
  ratio,
  shapeHeadline,
  shapeSeries,
  toNumber,
  toTimeMs,
} from '../src/lib/shape';

describe('toNumber', () => {
  it('accepts numbers and numeric strings (PostgreSQL numeric, bigint)', () => {
    expect(toNumber(12)).toBe(12);
    expect(toNumber('1234.50')).toBe(1234.5);
    expect(toNumber(' 42 ')).toBe(42);
    expect(toNumber('-3e2')).toBe(-300);
    expect(toNumber('9007199254740993')).toBe(9007199254740992);
  });
  it('refuses everything else', () => {
    expect(toNumber(null)).toBeNull();
    expect(toNumber(undefined)).toBeNull();
    expect(toNumber('')).toBeNull();
    expect(toNumber('12abc')).toBeNull();
    expect(toNumber('NaN')).toBeNull();
    expect(toNumber(true)).toBeNull();
    expect(toNumber(Infinity)).toBeNull();
  });
});

describe('toTimeMs', () => {
  it('parses PostgreSQL timestamptz text and ISO 8601', () => {
    const t = Date.UTC(2024, 2, 3, 14, 5, 0);
    expect(toTimeMs('2024-03-03 14:05:00+00')).toBe(t);
    expect(toTimeMs('2024-03-03 15:35:00+01:30')).toBe(t);
    expect(toTimeMs('2024-03-03 14:05:00.250+00')).toBe(t + 250);
    expect(toTimeMs('2024-03-03T14:05:00Z')).toBe(t);
    expect(toTimeMs('2024-03-03 16:05:00+0200')).toBe(t);
    expect(toTimeMs(t)).toBe(t);
    expect(toTimeMs(String(t))).toBe(t);
  });
  it('returns null for garbage', () => {
    expect(toTimeMs('yesterday')).toBeNull();
    expect(toTimeMs(null)).toBeNull();
  });
});

describe('ratio', () => {
  it('divides, and is null without a positive denominator', () => {
    expect(ratio(1, 4)).toBe(0.25);
    expect(ratio(1, 0)).toBeNull();
    expect(ratio(null, 3)).toBeNull();
  });
});

const row = (o: Record<string, unknown>) => o as Record<string, string | number | null>;

describe('headline', () => {
  it('recomputes rates and ratios from the sums, parsing string numerics', () => {
    const h = headlineFromRow(
      row({ timeframe: '15m', range_start_ms: '1709474700000', elapsed_s: '840', events: '1000', page_views: '300', orders: '350', payment_failed: '50', refunds: '4', gmv: '43750.00', refund_amount: '100.50', rejected: '7' }),
      210,
    )!;
    expect(h.timeframe).toBe('15m');
    expect(h.rangeStartMs).toBe(1709474700000);
    expect(h.gmv).toBe(43750);
    expect(h.orders).toBe(350);
    expect(h.orderRate).toBeCloseTo(350 / 14, 10); // 840 s elapsed = 14 min
    expect(h.successRate).toBeCloseTo(350 / 400, 10);
    expect(h.avgOrderValue).toBeCloseTo(125, 10);
    expect(h.conversion).toBeCloseTo(350 / 300, 10);
    expect(h.rejected).toBe(7);
    expect(h.distinctUsers).toBe(210);
  });
  it('leaves ratios unknown when there is nothing to divide by', () => {
    const h = headlineFromRow(row({ timeframe: '1m', elapsed_s: 0, orders: 0, payment_failed: 0, page_views: 0, gmv: 0 }))!;
    expect(h.successRate).toBeNull();
    expect(h.avgOrderValue).toBeNull();
    expect(h.conversion).toBeNull();
    expect(h.orderRate).toBe(0);
  });
  it('uses the whole range as the rate divisor when elapsed time is missing', () => {
    expect(headlineFromRow(row({ timeframe: '1h', orders: 120 }))!.orderRate).toBe(2);
  });
  it('ignores unknown timeframes', () => {
    expect(headlineFromRow(row({ timeframe: '5m', orders: 1 }))).toBeNull();
  });
  it('orders timeframes for display and marks missing ones', () => {
    const res = {
      rows: [row({ timeframe: '24h', orders: '9' }), row({ timeframe: '1m', orders: '1', current_minute: '2024-03-03 14:05:00+00' })],
    };
    const users = distinctUsersByTimeframe({ rows: [row({ timeframe: '24h', users: '5' }), row({ timeframe: 'x', users: null })] });
    const hs = shapeHeadline(res, users);
    expect(hs.map((x) => x?.timeframe ?? null)).toEqual(['1m', null, null, '24h']);
    expect(hs[3]!.distinctUsers).toBe(5);
    expect(hs[0]!.distinctUsers).toBeNull();
    expect(currentMinuteMs(res)).toBe(Date.UTC(2024, 2, 3, 14, 5));
    expect(currentMinuteMs(null)).toBeNull();
  });
  it('knows when nothing has been recorded', () => {
    expect(isEmpty(shapeHeadline({ rows: [] }))).toBe(true);
    expect(isEmpty(shapeHeadline({ rows: [row({ timeframe: '24h', events: '0', rejected: '0' })] }))).toBe(true);
    expect(isEmpty(shapeHeadline({ rows: [row({ timeframe: '24h', events: '0', rejected: '3' })] }))).toBe(false);
    expect(isEmpty(shapeHeadline({ rows: [row({ timeframe: '1m', events: '12' })] }))).toBe(false);
  });
});

describe('shapeSeries', () => {
  const M = 60_000;
  const now = Date.UTC(2024, 2, 3, 14, 5, 42); // bucket 14:05
  const at = (h: number, m: number) => Date.UTC(2024, 2, 3, h, m);

  it('lays rows on a regular grid ending with the current bucket, zero-filling gaps', () => {
    const s = shapeSeries(
      {
        rows: [
          row({ window_start_ms: String(at(14, 5)), orders: '3', gmv: '30.00', payment_failed: '1' }),
          row({ window_start: '2024-03-03 14:02:00+00', orders: 2, gmv: '25.5', payment_failed: 0 }),
        ],
      },
      M,
      5,
      now,
    );
    expect(s.t).toEqual([at(14, 1), at(14, 2), at(14, 3), at(14, 4), at(14, 5)]);
    expect(s.orders).toEqual([0, 2, 0, 0, 3]);
    expect(s.gmv).toEqual([0, 25.5, 0, 0, 30]);
    expect(s.success).toEqual([null, 1, null, null, 0.75]);
  });
  it('drops rows outside the grid or not on a bucket boundary', () => {
    const s = shapeSeries(
      {
        rows: [
          row({ window_start_ms: at(13, 0), orders: 9 }),
          row({ window_start_ms: at(14, 6), orders: 9 }),
          row({ window_start_ms: at(14, 4) + 1000, orders: 9 }),
          row({ window_start_ms: null, orders: 9 }),
        ],
      },
      M,
      3,
      now,
    );
    expect(s.orders).toEqual([0, 0, 0]);
  });
  it('aligns day buckets to UTC midnight', () => {
    const s = shapeSeries({ rows: [row({ window_start_ms: Date.UTC(2024, 2, 2), orders: 5 })] }, 86_400_000, 2, now);
    expect(s.t).toEqual([Date.UTC(2024, 2, 2), Date.UTC(2024, 2, 3)]);
    expect(s.orders).toEqual([5, 0]);
  });
  it('gives an all-zero grid for no data', () => {
    const s = shapeSeries(null, M, 60, now);
    expect(s.t).toHaveLength(60);
    expect(s.orders.every((x) => x === 0)).toBe(true);
  });
});
