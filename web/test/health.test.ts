import { describe, expect, it } from 'vitest';
import { HealthModel, RateTracker, parseConnectorStatuses, reduceStages, totalsFromMetrics } from '../src/lib/health';
import { parsePrometheus, type Sample } from '../src/lib/prom';

const S = (name: string, labels: Record<string, string>, value: number): Sample => ({ name, labels, value });

describe('parseConnectorStatuses', () => {
  it('reads the Kafka Connect expand=status shape', () => {
    const st = parseConnectorStatuses({
      'ecommerce-ingest': { status: { name: 'ecommerce-ingest', connector: { state: 'RUNNING', worker_id: '127.0.0.1:8083' }, tasks: [{ id: 0, state: 'RUNNING' }] } },
      'ecommerce-analytics': { status: { name: 'ecommerce-analytics', connector: { state: 'paused' }, tasks: [{ id: 0, state: 'PAUSED' }, { id: 1, state: 'FAILED', trace: 'boom' }] } },
    });
    expect(st.map((s) => [s.name, s.state, s.tasks.length])).toEqual([
      ['ecommerce-analytics', 'PAUSED', 2],
      ['ecommerce-ingest', 'RUNNING', 1],
    ]);
    expect(st[0].tasks[1]).toEqual({ id: 1, state: 'FAILED', trace: 'boom' });
  });
  it('tolerates junk', () => {
    expect(parseConnectorStatuses(null)).toEqual([]);
    expect(parseConnectorStatuses('x')).toEqual([]);
    expect(parseConnectorStatuses({ a: { status: { connector: { state: 'WHAT' } } } })[0].state).toBe('UNKNOWN');
    expect(parseConnectorStatuses({ a: null })[0]).toEqual({ name: 'a', state: 'UNKNOWN', trace: undefined, tasks: [] });
  });
});

describe('reduceStages', () => {
  it('uses pipeline-level counters when there is no stage label', () => {
    expect(reduceStages([S('i', { pipeline: 'p' }, 10)], [S('o', { pipeline: 'p' }, 8)])).toEqual({ in: 10, out: 8 });
  });
  it("takes the source's output as in and the sink's input as out, by kind label", () => {
    const ins = [S('i', { stage: 'store', kind: 'sink' }, 180), S('i', { stage: 'validate', kind: 'transform' }, 100)];
    const outs = [
      S('o', { stage: 'kpi', kind: 'transform' }, 190),
      S('o', { stage: 'raw', kind: 'source' }, 100),
      S('o', { stage: 'validate', kind: 'transform' }, 95),
      S('o', { stage: 'store', kind: 'sink' }, 0),
    ];
    expect(reduceStages(ins, outs)).toEqual({ in: 100, out: 180 });
  });
  it('otherwise takes the first stage listed as the source and the last as the sink, summing tasks', () => {
    // the host's /metrics: every stage has in and out per task, stages in chain order
    const text = (f: string, vals: [string, number, number][]) => vals.map(([st, t, v]) => S(f, { pipeline: 'p', stage: st, task: String(t) }, v));
    const ins = text('i', [['raw', 0, 0], ['raw', 1, 0], ['validate', 0, 50], ['validate', 1, 60], ['kpi', 0, 45], ['kpi', 1, 55], ['store', 0, 70], ['store', 1, 80]]);
    const outs = text('o', [['raw', 0, 50], ['raw', 1, 60], ['validate', 0, 45], ['validate', 1, 55], ['kpi', 0, 70], ['kpi', 1, 80], ['store', 0, 0], ['store', 1, 0]]);
    expect(reduceStages(ins, outs)).toEqual({ in: 110, out: 150 });
  });
  it('skips the dead-letter stage listed after the sink', () => {
    const ins = [S('i', { stage: 'raw' }, 0), S('i', { stage: 'store' }, 90), S('i', { stage: 'dead_letter' }, 5)];
    const outs = [S('o', { stage: 'raw' }, 100), S('o', { stage: 'store' }, 0), S('o', { stage: 'dead_letter' }, 0)];
    expect(reduceStages(ins, outs)).toEqual({ in: 100, out: 90 });
  });
  it('works with only one of the two families', () => {
    expect(reduceStages([], [S('o', { stage: 'a' }, 7), S('o', { stage: 'b' }, 5)])).toEqual({ in: 7, out: 5 });
  });
  it('is empty without counters', () => {
    expect(reduceStages([], [])).toEqual({});
  });
});

describe('totalsFromMetrics', () => {
  it('groups by pipeline and sums lag over partitions, rejected over stages', () => {
    const m = totalsFromMetrics(
      parsePrometheus(`
sluice_records_in_total{pipeline="ingest",stage="poll",task="0"} 0
sluice_records_in_total{pipeline="ingest",stage="produce",task="0"} 480
sluice_records_out_total{pipeline="ingest",stage="poll",task="0"} 500
sluice_records_out_total{pipeline="ingest",stage="produce",task="0"} 0
sluice_records_rejected_total{pipeline="analytics",stage="validate"} 7
sluice_records_rejected_total{pipeline="analytics",stage="dedup"} 2
sluice_consumer_lag{pipeline="analytics",topic="events_raw",partition="0"} 12
sluice_consumer_lag{pipeline="analytics",topic="events_raw",partition="1"} 3
sluice_consumer_lag{pipeline="analytics",topic="events_raw",partition="2"} -1
sluice_restarts_total{pipeline="analytics"} 1
sluice_records_in_total{stage="orphan"} 99
`),
    );
    expect(m.get('ingest')).toEqual({ in: 500, out: 480, rejected: undefined, lag: undefined, restarts: undefined });
    expect(m.get('analytics')).toMatchObject({ rejected: 9, lag: 15, restarts: 1 });
    expect([...m.keys()].sort()).toEqual(['analytics', 'ingest']);
  });
  it('accepts the alternative metric names and the connector label', () => {
    const m = totalsFromMetrics([S('sluice_restarts_total', { connector: 'x' }, 4)]);
    expect(m.get('x')?.restarts).toBe(4);
  });
});

describe('RateTracker', () => {
  it('is unknown until two observations, then counts per second over the window', () => {
    const r = new RateTracker(5000);
    expect(r.rate()).toBeNull();
    r.push(0, 0);
    expect(r.rate()).toBeNull();
    r.push(1000, 100);
    expect(r.rate()).toBe(100);
    for (let t = 2000; t <= 10000; t += 1000) r.push(t, 100 + ((t - 1000) / 1000) * 300);
    // the old 100/s second has left the window: only 300/s remains
    expect(r.rate()).toBe(300);
  });
  it('restarts after a counter reset instead of going negative', () => {
    const r = new RateTracker(5000);
    r.push(0, 1000);
    r.push(1000, 1100);
    r.push(2000, 10);
    expect(r.rate()).toBeNull();
    r.push(3000, 60);
    expect(r.rate()).toBe(50);
  });
  it('ignores missing values and repeated timestamps', () => {
    const r = new RateTracker();
    r.push(0, 0);
    r.push(1000, undefined);
    r.push(0, 50);
    r.push(2000, 20);
    expect(r.rate()).toBe(10);
  });
});

describe('HealthModel', () => {
  it('merges status and metrics and lists pipelines known to either', () => {
    const m = new HealthModel(5000);
    m.updateStatus(parseConnectorStatuses({ a: { status: { connector: { state: 'RUNNING' }, tasks: [] } } }));
    m.updateMetrics(0, [S('sluice_records_in_total', { pipeline: 'a' }, 0), S('sluice_records_out_total', { pipeline: 'b' }, 0)]);
    m.updateMetrics(2000, [S('sluice_records_in_total', { pipeline: 'a' }, 400), S('sluice_records_out_total', { pipeline: 'b' }, 100)]);
    const rows = m.rows();
    expect(rows.map((r) => [r.name, r.state, r.inRate, r.outRate])).toEqual([
      ['a', 'RUNNING', 200, null],
      ['b', 'UNKNOWN', null, 50],
    ]);
  });
});
