// The pipeline picture (stages as a chain, records/s on each edge, rejects branching to the dead
// letter, the stage holding the flow back highlighted) and the tap panel (a live sample of the
// records leaving a chosen stage, from GET /connectors/NAME/tap).

import { flowOf, openStream, type LivePipeline, type StreamHandle } from '../lib/live';
import { formatRate, formatInt } from '../lib/format';
import { $, h, setText } from './dom';

const MAX_SHOWN = 20;

export class FlowView {
  private tap: StreamHandle | null = null;
  private selected: { pipeline: string; stage: string } | null = null;

  constructor(
    private headers: () => Record<string, string>,
    private canTap: () => boolean,
  ) {
    $('#tap-start').addEventListener('click', () => (this.tap ? this.stopTap() : this.startTap()));
  }

  render(ps: LivePipeline[]): void {
    const root = $('#flow-list');
    $('#flow-empty').hidden = ps.length > 0;
    const seen = new Set<string>();
    for (const p of ps) {
      seen.add(p.name);
      const f = flowOf(p);
      let fig = root.querySelector<HTMLElement>(`figure[data-pipeline="${CSS.escape(p.name)}"]`);
      const shape = f.stages.map((s) => s.name).join('|') + (f.deadLetter ? '|dlq' : '');
      if (!fig || fig.dataset.shape !== shape) {
        const fresh = this.build(p.name, f.stages.map((s) => s.name), !!f.deadLetter);
        fresh.dataset.shape = shape;
        if (fig) fig.replaceWith(fresh);
        else root.append(fresh);
        fig = fresh;
      }
      fig.dataset.state = p.state;
      f.stages.forEach((s, i) => {
        const box = $(`[data-stage="${CSS.escape(s.name)}"]`, fig!);
        const slow = s.name === f.slowest;
        box.dataset.slow = String(slow);
        box.dataset.backpressured = String(slow && f.backpressured);
        const busy = typeof s.busy === 'number' ? `${Math.round(s.busy * 100)} % busy` : '';
        const p99 = typeof s.p99_ms === 'number' ? ` · p99 ${s.p99_ms < 1 ? s.p99_ms.toFixed(1) : Math.round(s.p99_ms)} ms` : '';
        setText($('.stage-meta', box), `${s.use}${busy ? ' · ' + busy : ''}${p99}`);
        box.title = slow ? (f.backpressured ? 'holds the flow back (backpressure)' : 'the slowest stage') : '';
        if (i < f.edges.length) {
          const e = $(`[data-edge="${i}"]`, fig!);
          const r = f.edges[i];
          e.dataset.value = r === null ? '' : String(r);
          setText($('.edge-rate', e), r === null ? '…' : `${formatRate(r)}/s`);
        }
      });
      const dl = fig.querySelector<HTMLElement>('[data-dead-letter]');
      if (dl) {
        dl.dataset.value = f.rejectedPerS === null ? '' : String(f.rejectedPerS);
        setText($('.edge-rate', dl), `${f.rejectedPerS === null ? '…' : formatRate(f.rejectedPerS) + '/s'} rejected (${formatInt(f.rejected)} in all)`);
      }
    }
    for (const fig of [...root.querySelectorAll<HTMLElement>('figure[data-pipeline]')])
      if (!seen.has(fig.dataset.pipeline!)) fig.remove();
    this.renderTapControls();
  }

  private build(name: string, stages: string[], dlq: boolean): HTMLElement {
    const chain = h('ol', { class: 'flow-chain', 'aria-label': `stages of ${name}` });
    stages.forEach((s, i) => {
      if (i > 0)
        chain.append(h('li', { class: 'flow-edge', 'data-edge': i - 1, 'aria-label': `records per second from ${stages[i - 1]} to ${s}` }, h('span', { class: 'edge-arrow', 'aria-hidden': 'true' }, '→'), h('span', { class: 'edge-rate' }, '…')));
      const box = h(
        'li',
        { class: 'flow-stage' },
        h('button', { type: 'button', class: 'stage-box', 'data-stage': s, 'aria-label': `tap stage ${s} of ${name}` }, h('span', { class: 'stage-name' }, s), h('span', { class: 'stage-meta' }, '')),
      );
      box.querySelector('button')!.addEventListener('click', () => this.select(name, s));
      chain.append(box);
    });
    const fig = h('figure', { class: 'flow', 'data-pipeline': name }, h('figcaption', {}, name), chain);
    if (dlq)
      fig.append(h('div', { class: 'flow-dlq', 'data-dead-letter': 'true' }, h('span', { class: 'edge-arrow', 'aria-hidden': 'true' }, '↳'), ' dead letter: ', h('span', { class: 'edge-rate' }, '…')));
    return fig;
  }

  private select(pipeline: string, stage: string): void {
    this.selected = { pipeline, stage };
    for (const b of document.querySelectorAll<HTMLElement>('.stage-box')) b.dataset.selected = 'false';
    const fig = document.querySelector<HTMLElement>(`figure[data-pipeline="${CSS.escape(pipeline)}"]`);
    const box = fig?.querySelector<HTMLElement>(`[data-stage="${CSS.escape(stage)}"]`);
    if (box) box.dataset.selected = 'true';
    if (this.tap) this.stopTap();
    this.renderTapControls();
  }

  private renderTapControls(): void {
    const btn = $('#tap-start') as HTMLButtonElement;
    const allowed = this.canTap();
    $('#tap-auth').hidden = allowed;
    setText($('#tap-target'), this.selected ? `${this.selected.pipeline} › ${this.selected.stage}` : 'click a stage in the picture');
    btn.disabled = !allowed || !this.selected;
    setText(btn, this.tap ? 'Stop' : 'Start tap');
  }

  private startTap(): void {
    if (!this.selected) return;
    const { pipeline, stage } = this.selected;
    const dead = ($('#tap-dead') as HTMLInputElement).checked;
    const list = $('#tap-records');
    list.replaceChildren();
    const status = $('#tap-status');
    const url = `/connectors/${encodeURIComponent(pipeline)}/tap?stage=${encodeURIComponent(stage)}&rate=5${dead ? '&dead_letter=true' : ''}`;
    this.tap = openStream(url, {
      headers: this.headers(),
      retryMs: 0,
      onState: (up, why) => {
        setText(status, up ? `Tapping ${pipeline} › ${stage}${dead ? ' and its dead letters' : ''} (at most 5 records/s)` : `Tap closed: ${why ?? ''}`);
        if (!up) {
          this.tap = null;
          this.renderTapControls();
        }
      },
      onEvent: (e) => {
        if (e.event !== 'record') return;
        let d: { tap?: string; reason?: string; stage?: string; rec?: { value?: unknown; key?: unknown; offset?: number } };
        try {
          d = JSON.parse(e.data);
        } catch {
          return;
        }
        const where = d.reason ? `dead letter from ${d.stage}: ${d.reason}` : d.tap ?? '';
        const li = h('li', { 'data-tap-record': 'true', class: d.reason ? 'tap-dead' : '' }, h('span', { class: 'tap-where' }, where), h('code', {}, JSON.stringify(d.rec?.value ?? null)));
        list.prepend(li);
        while (list.children.length > MAX_SHOWN) list.lastElementChild?.remove();
      },
    });
    this.renderTapControls();
  }

  private stopTap(): void {
    this.tap?.close();
    this.tap = null;
    setText($('#tap-status'), 'Tap stopped.');
    this.renderTapControls();
  }
}
