import { describe, expect, it } from 'vitest';
import { SseParser, flowOf, type LivePipeline } from '../src/lib/live';

describe('SseParser', () => {
  it('splits events across chunks, skips comments, joins data lines', () => {
    const p = new SseParser();
    expect(p.push('retry: 2000\n\n: ping\n\nevent: status\nda')).toEqual([]);
    expect(p.push('ta: {"a":1}\n\nevent: record\r\ndata: x\r\ndata: y\r\n\r\n')).toEqual([
      { event: 'status', data: '{"a":1}' },
      { event: 'record', data: 'x\ny' },
    ]);
  });
});

describe('flowOf', () => {
  const p: LivePipeline = {
    name: 'flow', state: 'RUNNING', tasks: 1, restarts: 0, pid: 1, lag: null,
    stages: [
      { name: 'in', use: 'file-source', in: 0, out: 10, rejected: 0, dropped: 0, retries: 0, out_per_s: 100, busy: 0, p99_ms: null },
      { name: 'check', use: 'validator', in: 10, out: 9, rejected: 1, dropped: 0, retries: 0, out_per_s: 90, rejected_per_s: 10, busy: 0.2, p99_ms: 0.1 },
      { name: 'out', use: 'file-sink', in: 9, out: 0, rejected: 0, dropped: 0, retries: 0, busy: 0.9, p99_ms: 5 },
      { name: 'dlq', use: 'file-sink', in: 1, out: 0, rejected: 0, dropped: 0, retries: 0, dead_letter: true },
    ],
  };
  it('keeps the dead letter apart, puts rates on edges, flags the busiest stage', () => {
    const f = flowOf(p);
    expect(f.stages.map((s) => s.name)).toEqual(['in', 'check', 'out']);
    expect(f.deadLetter?.name).toBe('dlq');
    expect(f.edges).toEqual([100, 90]);
    expect(f.rejectedPerS).toBe(10);
    expect(f.slowest).toBe('out');
    expect(f.backpressured).toBe(true);
  });
  it('falls back to the slowest p99 when no stage shows busy time', () => {
    const q = { ...p, stages: p.stages.map((s) => ({ ...s, busy: 0 })) };
    expect(flowOf(q).slowest).toBe('out');
    expect(flowOf(q).backpressured).toBe(false);
  });
});
