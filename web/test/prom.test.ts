import { describe, expect, it } from 'vitest';
import { label, parsePrometheus, pick } from '../src/lib/prom';

const TEXT = `# HELP sluice_records_in_total Records received by a stage.
# TYPE sluice_records_in_total counter
sluice_records_in_total{pipeline="ecommerce-analytics",stage="validate"} 1200
sluice_records_in_total{pipeline="ecommerce-analytics",stage="dedup"} 1100 1709474700000
sluice_up 1
odd_label{msg="a \\"quoted\\" value, with comma",x="y\\\\z"} 3.5e2
sluice_lag{pipeline="p"} +Inf
sluice_nan NaN
broken{pipeline="x" 12
also broken
sluice_latency_seconds_bucket{le="0.1"} 4
`;

describe('parsePrometheus', () => {
  const s = parsePrometheus(TEXT);
  it('reads samples with and without labels, with and without timestamps', () => {
    expect(s.find((x) => x.name === 'sluice_up')).toEqual({ name: 'sluice_up', labels: {}, value: 1 });
    const dedup = s.find((x) => x.labels.stage === 'dedup')!;
    expect(dedup.value).toBe(1100);
    expect(dedup.labels.pipeline).toBe('ecommerce-analytics');
  });
  it('unescapes label values and parses exponents and special values', () => {
    const o = s.find((x) => x.name === 'odd_label')!;
    expect(o.labels.msg).toBe('a "quoted" value, with comma');
    expect(o.labels.x).toBe('y\\z');
    expect(o.value).toBe(350);
    expect(s.find((x) => x.name === 'sluice_lag')!.value).toBe(Infinity);
    expect(Number.isNaN(s.find((x) => x.name === 'sluice_nan')!.value)).toBe(true);
  });
  it('skips comments and malformed lines', () => {
    expect(s.some((x) => x.name === 'broken' || x.name === 'also')).toBe(false);
    expect(s.filter((x) => x.name.startsWith('sluice_records_in_total'))).toHaveLength(2);
  });
  it('picks the first metric name that exists, and reads labels by alias', () => {
    expect(pick(s, ['nope_total', 'sluice_records_in_total'])).toHaveLength(2);
    expect(pick(s, ['nope_total'])).toEqual([]);
    expect(label(s[0], ['connector', 'pipeline'])).toBe('ecommerce-analytics');
    expect(label(s[0], ['connector'])).toBeUndefined();
  });
  it('survives empty input and CRLF line ends', () => {
    expect(parsePrometheus('')).toEqual([]);
    expect(parsePrometheus('a 1\r\nb 2\r\n').map((x) => x.value)).toEqual([1, 2]);
  });
});
