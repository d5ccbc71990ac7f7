// The dashboard page: headline KPIs, trend charts per bucket size, pipeline health, the pipeline
// picture and the tap panel. Pipeline health and the picture are pushed by sluice once a second
// (server-sent events, GET /api/live, read with fetch so the Bearer token goes in a header; see
// lib/live.ts); so are the KPIs: named SQL queries from the host config (web.queries), run by
// sluice and pushed on a second stream (GET /api/live?query=…).
// Pause/Resume/Restart need the REST token, which the page gets from ?token= (see lib/auth.ts).

import './styles.css';
import { Connection, HttpError, request, type AppConfig } from './lib/api';
import { adoptFromLocation, authHeader, canControl, forgetToken } from './lib/auth';
import {
  DEFAULT_CURRENCY,
  formatBucket,
  formatClock,
  formatCurrency,
  formatCurrencyCompact,
  formatCompact,
  formatInt,
  formatPercent,
  formatRate,
} from './lib/format';
import { type PipelineRow, type State } from './lib/health';
import { openStream, type LiveStatus, type StreamHandle } from './lib/live';
import { FlowView } from './ui/flow';
import {
  BUCKETS,
  TIMEFRAMES,
  currentMinuteMs,
  distinctUsersByTimeframe,
  isEmpty,
  shapeHeadline,
  shapeSeries,
  type BucketId,
  type Headline,
  type QueryResult,
} from './lib/shape';
import { Chart } from './ui/chart';
import { connectionView } from './ui/conn';
import { $, announce, h, setText } from './ui/dom';

let currency = DEFAULT_CURRENCY;

const conn = new Connection(connectionView('sluice', () => location.host));

// The REST token (from ?token=, kept in sessionStorage) and whether sluice wants one for changes
// (/api/config says `auth: false` under --no-auth; until it answers, assume it does).
let token = adoptFromLocation();
let authRequired = true;
const sluiceHeaders = () => authHeader(token);

// ---- headline table ----------------------------------------------------------------------

interface KpiDef {
  id: string;
  label: string;
  get: (x: Headline) => number | null;
  fmt: (v: number | null) => string;
}
const KPIS: KpiDef[] = [
  { id: 'gmv', label: 'GMV', get: (x) => x.gmv, fmt: (v) => formatCurrency(v, currency) },
  { id: 'orders', label: 'Orders', get: (x) => x.orders, fmt: (v) => formatInt(v) },
  { id: 'order_rate', label: 'Order rate (orders/min)', get: (x) => x.orderRate, fmt: (v) => formatRate(v) },
  { id: 'success_rate', label: 'Payment success rate', get: (x) => x.successRate, fmt: (v) => formatPercent(v) },
  { id: 'aov', label: 'Average order value', get: (x) => x.avgOrderValue, fmt: (v) => formatCurrency(v, currency) },
  { id: 'conversion', label: 'Conversion (orders / page views)', get: (x) => x.conversion, fmt: (v) => formatPercent(v) },
  { id: 'users', label: 'Distinct users', get: (x) => x.distinctUsers, fmt: (v) => formatInt(v) },
  { id: 'events', label: 'Valid events', get: (x) => x.events, fmt: (v) => formatInt(v) },
  { id: 'rejected', label: 'Rejected events', get: (x) => x.rejected, fmt: (v) => formatInt(v) },
];

function buildKpiTable(): void {
  const body = $('#kpi-body');
  for (const k of KPIS) {
    const tr = h('tr', { 'data-kpi': k.id }, h('th', { scope: 'row' }, k.label));
    for (const tf of TIMEFRAMES)
      tr.append(h('td', { class: 'num', 'data-kpi': k.id, 'data-tf': tf.id, 'data-label': tf.label }, '—'));
    body.append(tr);
  }
}

function setCell(el: HTMLElement, v: number | null, text: string): void {
  el.dataset.value = v === null ? '' : String(v);
  setText(el, text);
}

let users = new Map<string, number>();

function renderHeadline(res: QueryResult): void {
  const hs = shapeHeadline(res, users);
  const section = $('#kpis');
  for (const k of KPIS) {
    TIMEFRAMES.forEach((tf, i) => {
      const x = hs[i];
      const v = x ? k.get(x) : null;
      setCell($(`td[data-kpi="${k.id}"][data-tf="${tf.id}"]`), v, k.fmt(v));
    });
  }
  const now = hs[0], q = hs[1];
  const start = now?.rangeStartMs ?? currentMinuteMs(res);
  section.dataset.windowStartMs = start === null ? '' : String(start);
  setText($('#tf-1m-range'), start === null ? '' : `(${formatBucket(start, '1m')})`);
  setCell($('#hero-gmv'), now?.gmv ?? null, formatCurrency(now?.gmv ?? null, currency));
  setCell($('#hero-orders'), now?.orders ?? null, formatInt(now?.orders ?? null));
  setCell($('#hero-rate'), q?.orderRate ?? null, `${formatRate(q?.orderRate ?? null)} /min`);
  setCell($('#hero-success'), q?.successRate ?? null, formatPercent(q?.successRate ?? null));

  const empty = isEmpty(hs);
  section.dataset.state = empty ? 'empty' : 'data';
  const msg = $('#kpi-empty');
  msg.hidden = !empty;
  if (empty) {
    msg.replaceChildren(
      'No events recorded in the last 24 hours yet. ',
      h('a', { href: './generator.html' }, 'Start the generator'),
      ' and the figures appear here within seconds.',
    );
  }
  setText($('#kpi-updated'), `Updated ${formatClock(Date.now())}`);
}

let lastHeadline: QueryResult | null = null;

function asResult(r: unknown): QueryResult {
  const q = (r ?? {}) as QueryResult;
  return { ...q, rows: Array.isArray(q?.rows) ? q.rows : [] };
}

/** A KPI query's answer pushed on the KPI stream (event `query`). */
function onQuery(name: string, status: number, result: unknown): void {
  const err = $('#kpi-error');
  if (status !== 200) {
    const msg = (result as { message?: string } | null)?.message ?? `HTTP ${status}`;
    if (name === 'headline') {
      err.hidden = false;
      setText(err, `The KPI query failed: ${msg}`);
    }
    return;
  }
  if (name === 'distinct_users') {
    users = distinctUsersByTimeframe(asResult(result));
    if (lastHeadline) renderHeadline(lastHeadline);
  } else if (name === 'headline') {
    lastHeadline = asResult(result);
    renderHeadline(lastHeadline);
    err.hidden = true;
  } else {
    const t = tabs.find((x) => BUCKETS.find((b) => b.id === x.id)?.query === name);
    const b = BUCKETS.find((x) => x.query === name);
    if (!t || !b) return;
    const now = currentMinuteMs(lastHeadline) ?? Date.now();
    const s = shapeSeries(asResult(result), b.ms, b.points, now);
    t.charts.gmv.setData(s.t, s.gmv);
    t.charts.orders.setData(s.t, s.orders);
    t.charts.success.setData(s.t, s.success);
    t.loadedAt = Date.now();
    t.panel.dataset.loaded = 'true';
  }
}

// One stream per page (a browser keeps at most six connections per server): the pipelines'
// status every second, and the KPIs — the headline every second, distinct users every 5 s, the
// active tab's series every second (1-minute buckets) or 10 s. Reopened when the tab changes.
let liveStream: StreamHandle | null = null;
function openLive(): void {
  liveStream?.close();
  const b = BUCKETS.find((x) => x.id === activeTab)!;
  const qs = `status=true&query=headline,distinct_users:5,${b.query}:${b.id === '1m' ? 1 : 10}&points=${b.points}`;
  liveStream = openStream(`/api/live?${qs}`, {
    headers: sluiceHeaders(),
    retryMs: 1500,
    onState: (up, why, status) => {
      if (up) conn.ok();
      else if (status === undefined) conn.fail(new Error(why ?? 'stream lost'));
      else {
        conn.ok();
        const err = $('#kpi-error');
        err.hidden = false;
        setText(err, `The KPI stream was refused: ${why ?? status}`);
        setTimeout(openLive, 3000);
      }
    },
    onEvent: (e) => {
      try {
        if (e.event === 'query') {
          const d = JSON.parse(e.data) as { name: string; status: number; result: unknown };
          conn.ok();
          onQuery(d.name, d.status, d.result);
        } else if (e.event === 'status') {
          const st = JSON.parse(e.data) as LiveStatus;
          conn.ok();
          renderHealth(rowsOf(st));
          flow?.render(st.pipelines);
        }
      } catch (err) {
        console.error(err);
      }
    },
  });
}

// ---- charts ------------------------------------------------------------------------------

interface Tab {
  id: BucketId;
  button: HTMLButtonElement;
  panel: HTMLElement;
  charts: { gmv: Chart; orders: Chart; success: Chart };
  loadedAt: number;
}
const tabs: Tab[] = [];
let activeTab: BucketId = '1m';

function buildCharts(): void {
  const list = $('#chart-tabs');
  const panels = $('#chart-panels');
  for (const b of BUCKETS) {
    const time = (ms: number) => formatBucket(ms, b.id);
    const id = `c-${b.id}`;
    const charts = {
      gmv: new Chart(
        { title: 'GMV', kind: 'bars', color: '#2b6cb0', axis: (v) => formatCurrencyCompact(v, currency), value: (v) => formatCurrency(v, currency), time },
        `${id}-gmv`,
      ),
      orders: new Chart({ title: 'Orders', kind: 'bars', color: '#2f855a', axis: (v) => formatCompact(v), value: (v) => formatInt(v), time }, `${id}-orders`),
      success: new Chart(
        { title: 'Payment success rate', kind: 'line', color: '#b7791f', axis: (v) => formatPercent(v, 0), value: (v) => formatPercent(v), range: [0, 1], time },
        `${id}-success`,
      ),
    };
    const button = h(
      'button',
      { type: 'button', role: 'tab', id: `tab-${b.id}`, 'aria-controls': `panel-${b.id}`, 'aria-selected': 'false', tabindex: '-1', 'data-bucket': b.id },
      b.id === '24h' ? '24 h' : b.id === '1h' ? '1 h' : b.id === '15m' ? '15 min' : '1 min',
    );
    const panel = h(
      'div',
      { role: 'tabpanel', id: `panel-${b.id}`, 'aria-labelledby': `tab-${b.id}`, class: 'chart-panel', hidden: true, 'data-bucket': b.id },
      h('p', { class: 'muted chart-range' }, `${b.title}, ${b.label}`),
      h('div', { class: 'chart-grid' }, charts.gmv.root, charts.orders.root, charts.success.root),
    );
    button.addEventListener('click', () => selectTab(b.id, false));
    button.addEventListener('keydown', (ev) => {
      const i = BUCKETS.findIndex((x) => x.id === b.id);
      let j = -1;
      if (ev.key === 'ArrowRight') j = (i + 1) % BUCKETS.length;
      else if (ev.key === 'ArrowLeft') j = (i - 1 + BUCKETS.length) % BUCKETS.length;
      else if (ev.key === 'Home') j = 0;
      else if (ev.key === 'End') j = BUCKETS.length - 1;
      if (j >= 0) {
        ev.preventDefault();
        selectTab(BUCKETS[j].id, true);
      }
    });
    list.append(button);
    panels.append(panel);
    tabs.push({ id: b.id, button, panel, charts, loadedAt: 0 });
  }
  selectTab('1m', false);
}

function selectTab(id: BucketId, focus: boolean): void {
  activeTab = id;
  for (const t of tabs) {
    const on = t.id === id;
    t.button.setAttribute('aria-selected', String(on));
    t.button.tabIndex = on ? 0 : -1;
    t.panel.hidden = !on;
    if (on) {
      if (focus) t.button.focus();
      for (const c of Object.values(t.charts)) c.refresh();
    }
  }
  if (liveStream) openLive();
}

// ---- pipeline health ---------------------------------------------------------------------


const STATE_TEXT: Record<State, string> = {
  RUNNING: 'Running',
  PAUSED: 'Paused',
  STOPPED: 'Stopped',
  FAILED: 'Failed',
  RESTARTING: 'Restarting',
  UNASSIGNED: 'Unassigned',
  UNKNOWN: 'Unknown',
};

function actionButton(p: string, verb: 'pause' | 'resume' | 'restart', label: string, disabled: boolean): HTMLButtonElement {
  const allowed = canControl(authRequired, token);
  const b = h(
    'button',
    {
      type: 'button',
      class: `btn btn-${verb}`,
      'data-action': verb,
      'data-pipeline': p,
      'aria-label': allowed ? `${label} ${p}` : `${label} ${p} (needs the access token)`,
    },
    label,
  );
  b.disabled = disabled || !allowed;
  if (!allowed) {
    b.dataset.needsToken = 'true';
    b.title = 'Needs the access token: open the dashboard with the link sluice printed (…/ui/?token=…)';
    b.setAttribute('aria-describedby', 'health-auth');
  }
  b.addEventListener('click', () => void act(p, verb, b));
  return b;
}

async function act(p: string, verb: 'pause' | 'resume' | 'restart', b: HTMLButtonElement): Promise<void> {
  const status = $('#health-status');
  b.disabled = true;
  const path = `/connectors/${encodeURIComponent(p)}/${verb}`;
  try {
    await request(path, { method: verb === 'restart' ? 'POST' : 'PUT', timeoutMs: 8000, headers: sluiceHeaders() });
    const past = verb === 'pause' ? 'paused' : verb === 'resume' ? 'resumed' : 'restarted';
    announce(status, `Pipeline ${p} ${past}.`);
  } catch (e) {
    if (e instanceof HttpError && e.status === 401) {
      // a wrong or outdated token: forget it and show the "needs token" state
      token = null;
      forgetToken(sessionStorageOrNull());
      renderAuthNote();
      announce(status, `Could not ${verb} ${p}: sluice refused the access token. Open the dashboard with the link sluice printed.`, 'error');
    } else {
      announce(status, `Could not ${verb} ${p}: ${(e as Error).message}`, 'error');
    }
  } finally {
    b.disabled = false; // the next status event (within a second) shows the new state
  }
}

function sessionStorageOrNull(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

/** The note above the health table when the buttons cannot work for want of a token. */
function renderAuthNote(): void {
  const note = $('#health-auth');
  note.hidden = canControl(authRequired, token);
}

function renderHealth(rows: PipelineRow[]): void {
  const body = $('#health-body');
  const table = $('#health-table');
  $('#health-empty').hidden = rows.length > 0;
  if (!rows.length) setText($('#health-empty'), 'No pipelines are running.');
  table.hidden = rows.length === 0;
  const seen = new Set<string>();
  for (const r of rows) {
    seen.add(r.name);
    let tr = body.querySelector<HTMLTableRowElement>(`tr[data-pipeline="${CSS.escape(r.name)}"]`);
    if (!tr) {
      tr = h(
        'tr',
        { 'data-pipeline': r.name },
        h('th', { scope: 'row', class: 'pipe-name' }, r.name),
        h('td', { 'data-col': 'state', 'data-label': 'State' }, h('span', { class: 'badge' })),
        h('td', { class: 'num', 'data-col': 'in', 'data-label': 'In (events/s)' }),
        h('td', { class: 'num', 'data-col': 'out', 'data-label': 'Out (events/s)' }),
        h('td', { class: 'num', 'data-col': 'lag', 'data-label': 'Consumer lag' }),
        h('td', { class: 'num', 'data-col': 'rejected', 'data-label': 'Rejected' }),
        h('td', { class: 'num', 'data-col': 'restarts', 'data-label': 'Restarts' }),
        h('td', { 'data-col': 'actions', class: 'actions', 'data-label': 'Actions' }),
      );
      body.append(tr);
    }
    const cell = (c: string) => $(`td[data-col="${c}"]`, tr!);
    const badge = $('.badge', cell('state'));
    badge.dataset.state = r.state;
    tr.dataset.state = r.state;
    const tasks = r.tasks.length ? ` · ${r.tasks.length} task${r.tasks.length > 1 ? 's' : ''}` : '';
    setText(badge, STATE_TEXT[r.state] + tasks);
    badge.title = r.trace ?? r.tasks.map((t) => `task ${t.id}: ${STATE_TEXT[t.state]}`).join(', ');
    setCell(cell('in'), r.inRate, formatRate(r.inRate));
    setCell(cell('out'), r.outRate, formatRate(r.outRate));
    setCell(cell('lag'), r.lag, formatInt(r.lag));
    setCell(cell('rejected'), r.rejected, formatInt(r.rejected));
    setCell(cell('restarts'), r.restarts, formatInt(r.restarts));
    const actions = cell('actions');
    const key = `${r.state}|${canControl(authRequired, token)}`;
    if (actions.dataset.for !== key) {
      actions.dataset.for = key;
      const paused = r.state === 'PAUSED';
      const hadFocus = actions.contains(document.activeElement) ? (document.activeElement as HTMLElement).dataset.action : undefined;
      actions.replaceChildren(
        paused ? actionButton(r.name, 'resume', 'Resume', false) : actionButton(r.name, 'pause', 'Pause', r.state !== 'RUNNING'),
        actionButton(r.name, 'restart', 'Restart', false),
      );
      // keep keyboard focus on the toggled control
      if (hadFocus) (actions.querySelector(`[data-action="${paused ? 'resume' : hadFocus === 'restart' ? 'restart' : 'pause'}"]`) as HTMLElement | null)?.focus();
    }
  }
  for (const tr of [...body.querySelectorAll<HTMLTableRowElement>('tr[data-pipeline]')])
    if (!seen.has(tr.dataset.pipeline!)) tr.remove();
}

// Rows of the health table from a live status event: "in" is what the source sent on, "out"
// what reached the sink (as the host counts them), rates over the last 3 seconds.
function rowsOf(st: LiveStatus): PipelineRow[] {
  return st.pipelines.map((p) => {
    const chain = p.stages.filter((s) => !s.dead_letter);
    const src = chain[0], sink = chain[chain.length - 1];
    const state = (['RUNNING', 'PAUSED', 'STOPPED', 'FAILED', 'RESTARTING'].includes(p.state) ? p.state : p.state === 'FINISHED' ? 'STOPPED' : 'UNKNOWN') as State;
    return {
      name: p.name,
      state,
      trace: p.trace,
      tasks: Array.from({ length: p.tasks }, (_, id) => ({ id, state })),
      inRate: typeof src?.out_per_s === 'number' ? src.out_per_s : null,
      outRate: typeof sink?.in_per_s === 'number' ? sink.in_per_s : null,
      lag: p.lag,
      rejected: chain.reduce((a, s) => a + (s.rejected ?? 0), 0),
      restarts: p.restarts,
    };
  });
}

let flow: FlowView | null = null;

// ---- start -------------------------------------------------------------------------------

async function main(): Promise<void> {
  buildKpiTable();
  buildCharts();
  renderAuthNote();
  try {
    const cfg = await request<AppConfig>('/api/config', { headers: sluiceHeaders() });
    authRequired = cfg.auth !== false;
    if (cfg.currency) currency = cfg.currency;
    if (cfg.version) setText($('#version'), `sluice ${cfg.version}`);
  } catch {
    /* the polls below report the connection state */
  }
  renderAuthNote();
  flow = new FlowView(sluiceHeaders, () => !!token || !authRequired);
  openLive();
}

void main();
