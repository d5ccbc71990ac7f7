// A small time-series chart on uPlot: bars for counts and money, a line for ratios. Each chart
// carries a text alternative (the latest value and the range) for screen readers.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h, setText } from './dom';

export interface ChartSpec {
  title: string;
  kind: 'bars' | 'line';
  color: string;
  /** formats a value for the axis */
  axis: (v: number) => string;
  /** formats a value for the text alternative and the legend */
  value: (v: number | null) => string;
  /** fixed y range, e.g. [0, 1] for ratios */
  range?: [number, number];
  /** formats a bucket start (ms) for the text alternative */
  time: (ms: number) => string;
}

export class Chart {
  readonly root: HTMLElement;
  private plot: uPlot | null = null;
  private host: HTMLElement;
  private summary: HTMLElement;
  private data: uPlot.AlignedData = [[], []];
  private ro: ResizeObserver;

  constructor(private spec: ChartSpec, id: string) {
    this.host = h('div', { class: 'chart-canvas', 'aria-hidden': 'true' });
    this.summary = h('p', { class: 'chart-summary', id: `${id}-summary` });
    this.root = h(
      'figure',
      { class: 'chart', 'aria-labelledby': `${id}-title`, 'aria-describedby': `${id}-summary`, 'data-chart': id },
      h('figcaption', { id: `${id}-title`, class: 'chart-title' }, spec.title),
      this.host,
      this.summary,
    );
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(this.host);
  }

  private width(): number {
    return Math.max(200, Math.floor(this.host.clientWidth || 320));
  }

  private create(): void {
    const s = this.spec;
    const opts: uPlot.Options = {
      width: this.width(),
      height: 170,
      ms: 1,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: s.range ? { range: s.range } : { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [
        {
          stroke: '#4a5568',
          grid: { stroke: '#e2e8f0' },
          ticks: { stroke: '#cbd5e0' },
          values: (_u, vals) => vals.map((v) => s.time(v)),
        },
        {
          stroke: '#4a5568',
          grid: { stroke: '#e2e8f0' },
          ticks: { stroke: '#cbd5e0' },
          size: 60,
          values: (_u, vals) => vals.map((v) => s.axis(v)),
        },
      ],
      series: [
        {},
        s.kind === 'bars'
          ? {
              label: s.title,
              stroke: s.color,
              fill: s.color + 'cc',
              paths: uPlot.paths.bars!({ size: [0.8, 40], align: 0 }),
              points: { show: false },
            }
          : { label: s.title, stroke: s.color, width: 2, spanGaps: false, points: { show: true, size: 4 } },
      ],
    };
    this.plot = new uPlot(opts, this.data, this.host);
  }

  private resize(): void {
    if (this.plot) this.plot.setSize({ width: this.width(), height: 170 });
  }

  setData(t: number[], y: (number | null)[]): void {
    this.data = [t, y];
    if (!this.plot) {
      if (!this.host.isConnected) return;
      this.create();
    } else this.plot.setData(this.data);
    this.root.dataset.points = String(t.length);
    const known = y.filter((v): v is number => v !== null);
    const last = y.length ? y[y.length - 1] : null;
    const max = known.length ? Math.max(...known) : null;
    const txt = t.length
      ? `${this.spec.title}: latest bucket (${this.spec.time(t[t.length - 1])}) ${this.spec.value(last)}; ` +
        `highest ${this.spec.value(max)} over ${t.length} buckets from ${this.spec.time(t[0])}.`
      : `${this.spec.title}: no data.`;
    setText(this.summary, txt);
  }

  /** Draws now if the chart became visible after data arrived (a tab switch). */
  refresh(): void {
    if (!this.plot && this.host.isConnected && this.data[0].length) this.create();
    else this.resize();
  }
}
