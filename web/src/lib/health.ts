// The pipeline health panel's model: connector status (GET /connectors?expand=status) merged
// with counters from GET /metrics, and rates computed from successive scrapes.

import { DEAD_LETTER_STAGES, KIND_LABELS, METRIC_NAMES, PIPELINE_LABELS, STAGE_LABELS } from './metric-names';
import { label, pick, type Sample } from './prom';

export type State = 'RUNNING' | 'PAUSED' | 'STOPPED' | 'FAILED' | 'RESTARTING' | 'UNASSIGNED' | 'UNKNOWN';
const STATES: readonly string[] = ['RUNNING', 'PAUSED', 'STOPPED', 'FAILED', 'RESTARTING', 'UNASSIGNED'];

export interface TaskStatus {
  id: number;
  state: State;
  trace?: string;
}
export interface PipelineStatus {
  name: string;
  state: State;
  trace?: string;
  tasks: TaskStatus[];
}

function toState(v: unknown): State {
  const s = typeof v === 'string' ? v.toUpperCase() : '';
  return (STATES.includes(s) ? s : 'UNKNOWN') as State;
}

/** Parses GET /connectors?expand=status (Kafka Connect's shape); tolerates missing parts. */
export function parseConnectorStatuses(body: unknown): PipelineStatus[] {
  const out: PipelineStatus[] = [];
  if (!body || typeof body !== 'object') return out;
  for (const [name, v] of Object.entries(body as Record<string, unknown>)) {
    const st = (v as { status?: Record<string, unknown> } | null)?.status ?? (v as Record<string, unknown> | null);
    const conn = (st?.connector ?? {}) as Record<string, unknown>;
    const tasks = Array.isArray(st?.tasks) ? (st!.tasks as Record<string, unknown>[]) : [];
    out.push({
      name: typeof st?.name === 'string' ? st.name : name,
      state: toState(conn.state),
      trace: typeof conn.trace === 'string' ? conn.trace : undefined,
      tasks: tasks.map((t, i) => ({
        id: typeof t.id === 'number' ? t.id : i,
        state: toState(t.state),
        trace: typeof t.trace === 'string' ? t.trace : undefined,
      })),
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Counter totals of one pipeline at one scrape; undefined where the metric is absent. */
export interface PipelineTotals {
  in?: number;
  out?: number;
  rejected?: number;
  lag?: number;
  restarts?: number;
}

function sum(xs: number[]): number | undefined {
  return xs.length ? xs.reduce((a, b) => a + b, 0) : undefined;
}

/**
 * Reduces per-stage counters of one pipeline to the pipeline's records in and out, as the host
 * itself counts them: "in" is what the source stage emitted, "out" what reached the sink stage.
 * - counters without a stage label are pipeline totals already;
 * - the source and the sink are recognised by a kind label when there is one, else by order:
 *   /metrics lists a pipeline's stages in chain order, so the first stage seen is the source
 *   and the last one the sink (a dead-letter stage, listed after the chain, is skipped).
 *   Counters of several tasks of one stage are summed.
 */
export function reduceStages(ins: Sample[], outs: Sample[]): { in?: number; out?: number } {
  const plainIn = ins.filter((s) => label(s, STAGE_LABELS) === undefined);
  const plainOut = outs.filter((s) => label(s, STAGE_LABELS) === undefined);
  if (plainIn.length || plainOut.length) {
    return { in: sum(plainIn.map((s) => s.value)), out: sum(plainOut.map((s) => s.value)) };
  }
  type St = { kind?: string; in: number[]; out: number[] };
  const stages = new Map<string, St>(); // insertion order = order of first appearance
  const get = (s: Sample) => {
    const k = label(s, STAGE_LABELS) ?? '';
    let e = stages.get(k);
    if (!e) stages.set(k, (e = { in: [], out: [] }));
    const kind = label(s, KIND_LABELS);
    if (kind) e.kind = kind.toLowerCase();
    return e;
  };
  // interleave by position so that either family alone fixes the chain order
  for (let i = 0; i < Math.max(ins.length, outs.length); i++) {
    if (i < outs.length) get(outs[i]).out.push(outs[i].value);
    if (i < ins.length) get(ins[i]).in.push(ins[i].value);
  }
  // the dead-letter sink is listed after the chain; it is neither source nor sink of it
  const all = [...stages.entries()].filter(([name]) => !(DEAD_LETTER_STAGES as readonly string[]).includes(name)).map(([, e]) => e);
  if (!all.length) return {};
  const tot = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  let sources = all.filter((e) => e.kind === 'source');
  let sinks = all.filter((e) => e.kind === 'sink');
  if (!sources.length) sources = [all[0]];
  if (!sinks.length) sinks = [all[all.length - 1]];
  return {
    in: tot(sources.map((e) => tot(e.out.length ? e.out : e.in))),
    out: tot(sinks.map((e) => tot(e.in.length ? e.in : e.out))),
  };
}

/** Per-pipeline totals from one /metrics scrape. */
export function totalsFromMetrics(samples: Sample[]): Map<string, PipelineTotals> {
  const by = new Map<string, { in: Sample[]; out: Sample[]; rej: Sample[]; lag: Sample[]; rst: Sample[] }>();
  const slot = (s: Sample) => {
    const p = label(s, PIPELINE_LABELS);
    if (p === undefined) return undefined;
    let e = by.get(p);
    if (!e) by.set(p, (e = { in: [], out: [], rej: [], lag: [], rst: [] }));
    return e;
  };
  for (const s of pick(samples, METRIC_NAMES.recordsIn)) slot(s)?.in.push(s);
  for (const s of pick(samples, METRIC_NAMES.recordsOut)) slot(s)?.out.push(s);
  for (const s of pick(samples, METRIC_NAMES.rejected)) slot(s)?.rej.push(s);
  for (const s of pick(samples, METRIC_NAMES.lag)) slot(s)?.lag.push(s);
  for (const s of pick(samples, METRIC_NAMES.restarts)) slot(s)?.rst.push(s);
  const out = new Map<string, PipelineTotals>();
  for (const [p, e] of by) {
    const io = reduceStages(e.in, e.out);
    const finite = (xs: Sample[]) => xs.map((s) => s.value).filter((v) => Number.isFinite(v));
    out.set(p, {
      in: io.in,
      out: io.out,
      rejected: sum(finite(e.rej)),
      lag: sum(finite(e.lag).map((v) => Math.max(0, v))),
      restarts: sum(finite(e.rst)),
    });
  }
  return out;
}

/**
 * Per-second rate of a counter over a sliding window of observations. A counter that goes
 * down (the pipeline process restarted) restarts the window rather than showing a negative rate.
 */
export class RateTracker {
  private pts: { t: number; v: number }[] = [];
  constructor(private windowMs = 5000) {}

  push(tMs: number, v: number | undefined): void {
    if (v === undefined || !Number.isFinite(v)) return;
    const last = this.pts[this.pts.length - 1];
    if (last && (v < last.v || tMs <= last.t)) {
      if (tMs <= last.t) return;
      this.pts = [];
    }
    this.pts.push({ t: tMs, v });
    // keep one point at or before the window's start so the window is always fully covered
    while (this.pts.length > 2 && this.pts[1].t <= tMs - this.windowMs) this.pts.shift();
  }

  /** events/s, or null until two observations exist */
  rate(): number | null {
    if (this.pts.length < 2) return null;
    const a = this.pts[0], b = this.pts[this.pts.length - 1];
    return (b.v - a.v) / ((b.t - a.t) / 1000);
  }
}

export interface PipelineRow {
  name: string;
  state: State;
  trace?: string;
  tasks: TaskStatus[];
  inRate: number | null;
  outRate: number | null;
  lag: number | null;
  rejected: number | null;
  restarts: number | null;
}

/** Keeps rate trackers across scrapes and produces the panel's rows. */
export class HealthModel {
  private rates = new Map<string, { in: RateTracker; out: RateTracker }>();
  private totals = new Map<string, PipelineTotals>();
  private statuses: PipelineStatus[] = [];

  constructor(private windowMs = 5000) {}

  updateStatus(s: PipelineStatus[]): void {
    this.statuses = s;
  }

  updateMetrics(tMs: number, samples: Sample[]): void {
    this.totals = totalsFromMetrics(samples);
    for (const [p, t] of this.totals) {
      let r = this.rates.get(p);
      if (!r) this.rates.set(p, (r = { in: new RateTracker(this.windowMs), out: new RateTracker(this.windowMs) }));
      r.in.push(tMs, t.in);
      r.out.push(tMs, t.out);
    }
  }

  rows(): PipelineRow[] {
    const names = new Set<string>(this.statuses.map((s) => s.name));
    for (const p of this.totals.keys()) names.add(p);
    return [...names].sort((a, b) => a.localeCompare(b)).map((name) => {
      const st = this.statuses.find((s) => s.name === name);
      const t = this.totals.get(name) ?? {};
      const r = this.rates.get(name);
      return {
        name,
        state: st?.state ?? 'UNKNOWN',
        trace: st?.trace,
        tasks: st?.tasks ?? [],
        inRate: r?.in.rate() ?? null,
        outRate: r?.out.rate() ?? null,
        lag: t.lag ?? null,
        rejected: t.rejected ?? null,
        restarts: t.restarts ?? null,
      };
    });
  }
}
