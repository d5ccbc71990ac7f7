// End-to-end browser test against the real stack that tests/web/test-e2e.sh starts:
// PostgreSQL (PG* env), sluice with both pipelines and the embedded broker (SLUICE_URL,
// SLUICE_PID), sluice-gen (GEN_URL). Checks, in Debian chromium:
//  1. the dashboard's GMV and orders for a minute equal SQL on kpi_1m_total for that minute;
//  2. changing the rate in the generator panel makes the dashboard's events/s follow;
//  3. Pause in the health panel pauses the pipeline, as the REST API reports (then Resume) —
//     with the REST token the page got from /ui/?token= (kept in sessionStorage, stripped from
//     the address bar); without a token, or with a wrong one, the buttons show "needs token";
//  4. the "disconnected" banner appears when sluice goes away;
// and takes screenshots of both pages into $SLUICE_BUILD_DIR/screenshots/.

import { execFileSync } from 'node:child_process';
import { check, failed, launch, newPage, numAttr, shot, waitFor } from './browser.mjs';

const SLUICE = process.env.SLUICE_URL ?? 'http://127.0.0.1:8083';
const GEN = process.env.GEN_URL ?? 'http://127.0.0.1:7070';
const PSQL = process.env.PSQL ?? `${process.env.PGTMP_BIN ?? '/usr/lib/postgresql/15/bin'}/psql`;
const INGEST = process.env.E2E_INGEST ?? 'ecommerce-ingest';
const ANALYTICS = process.env.E2E_ANALYTICS ?? 'ecommerce-analytics';
const TOKEN = process.env.SLUICE_TOKEN ?? '';

/** One SQL statement through psql (PGHOST/PGPORT/PGUSER/PGDATABASE from pgtmp); rows of fields. */
function sql(q) {
  const out = execFileSync(PSQL, ['-X', '-q', '-A', '-t', '-F', '|', '-v', 'ON_ERROR_STOP=1', '-c', q], {
    encoding: 'utf8',
    env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
    timeout: 10000,
  });
  return out.trim() ? out.trim().split('\n').map((l) => l.split('|')) : [];
}

async function getJson(url, init) {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

const connectorState = async (name) =>
  (await getJson(`${SLUICE}/connectors/${encodeURIComponent(name)}/status`)).body?.connector?.state;

const usd = (v) => new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' }).format(v);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const { browser, close } = await launch();
const hardStop = setTimeout(async () => {
  console.log('not ok - e2e: took more than 360 s, giving up');
  await close();
  process.exit(1);
}, 360_000);

try {
  // ---- the stack is up --------------------------------------------------------------------
  const running = await waitFor(async () => {
    const { body } = await getJson(`${SLUICE}/connectors?expand=status`);
    const states = [INGEST, ANALYTICS].map((n) => body?.[n]?.status?.connector?.state);
    return states.every((s) => s === 'RUNNING') ? states : null;
  }, 60000, 500);
  check(running, `both pipelines RUNNING per GET /connectors?expand=status`);

  // ---- without the token the pipeline buttons say they need it ---------------------------------
  check(TOKEN.length > 0, 'test-e2e.sh passed the REST token (sluice token)');
  const anon = await newPage(browser);
  await anon.goto(`${SLUICE}/ui/`);
  const anonRow = anon.locator(`#health-body tr[data-pipeline="${ANALYTICS}"]`);
  check(await waitFor(async () => (await anonRow.count()) === 1, 15000), 'the health panel lists the pipelines without a token');
  check(await anon.locator('#health-auth').isVisible(), 'without a token the "needs token" note is shown');
  const anonPause = anonRow.locator('button[data-action="pause"]');
  check(await anonPause.isDisabled(), 'without a token Pause is disabled');
  check((await anonPause.getAttribute('data-needs-token')) === 'true', '... and marked as needing the token');
  check(/needs the access token/.test((await anonPause.getAttribute('aria-label')) ?? ''), '... in its accessible name');
  await shot(anon, 'dashboard-needs-token');

  // ---- a wrong token: the click is refused (401) and the page says it needs a token --------------
  const bad = await newPage(browser);
  await bad.goto(`${SLUICE}/ui/?token=wrong-token`);
  const badRow = bad.locator(`#health-body tr[data-pipeline="${ANALYTICS}"]`);
  check(await waitFor(async () => (await badRow.count()) === 1, 15000), 'the page with a wrong token loads');
  check(!(await bad.locator('#health-auth').isVisible()), 'with a token the note is hidden');
  await badRow.locator('button[data-action="pause"]').click();
  check(await waitFor(async () => bad.locator('#health-auth').isVisible(), 10000), 'a refused token brings back the "needs token" state');
  check(/refused the access token/.test((await bad.locator('#health-status').textContent()) ?? ''), 'and says sluice refused the token');
  check((await connectorState(ANALYTICS)) === 'RUNNING', 'the pipeline was not paused with a wrong token');

  // ---- with the token from the URL ---------------------------------------------------------------
  const dash = await newPage(browser);
  const requests = [];
  dash.on('request', (r) => requests.push(r.url()));
  await dash.goto(`${SLUICE}/ui/?token=${encodeURIComponent(TOKEN)}`);
  check((await dash.title()).includes('sluice'), 'the supervisor serves the dashboard under /ui/');
  check(!dash.url().includes('token'), `the token is stripped from the address bar (${dash.url()})`);
  check((await dash.evaluate(() => sessionStorage.getItem('sluice.token'))) === TOKEN, 'and kept in sessionStorage');

  // data flows: orders appear for the last 15 minutes
  const flowing = await waitFor(async () => ((await numAttr(dash, 'td[data-kpi="orders"][data-tf="15m"]')) ?? 0) > 0, 90000, 500);
  check(flowing, 'orders appear on the dashboard without a reload');
  check((await dash.locator('#conn').getAttribute('data-state')) === 'connected', 'the dashboard shows it is connected');

  // ---- live updates by server-sent events, the pipeline picture, the tap panel ------------------
  await sleep(3000);
  const polls = requests.filter((u) => /\/connectors\?expand=status|\/metrics(\?|$)|\/api\/query\//.test(u));
  const live = requests.filter((u) => u.includes('/api/live?status=true&query='));
  check(polls.length === 0, `no polling of /connectors?expand=status, /metrics or /api/query/ (${polls.length} requests: ${polls.slice(0, 3).join(' ')})`);
  check(live.length === 1, `one /api/live event stream carries the status and the KPIs (${live.length} opened)`);
  const fig = dash.locator(`figure[data-pipeline="${INGEST}"]`);
  const nStages = await waitFor(async () => ((n) => (n >= 2 ? n : null))(await fig.locator('[data-stage]').count()), 15000);
  check(nStages, `the picture shows ${INGEST}'s stages as a chain (${nStages})`);
  const edgeRate = await waitFor(async () => ((v) => (v > 0 ? v : null))(await numAttr(dash, `figure[data-pipeline="${INGEST}"] [data-edge="0"]`)), 15000, 300);
  check(edgeRate, `the picture shows records/s on the first edge (${edgeRate})`);
  check(await waitFor(async () => (await fig.locator('[data-slow="true"]').count()) === 1, 15000, 300), 'one stage is highlighted as the one holding the flow back');
  await fig.locator('.stage-box').nth(1).click();
  await dash.locator('#tap-start').click();
  const tapped = await waitFor(async () => ((n) => (n >= 2 ? n : null))(await dash.locator('#tap-records li[data-tap-record]').count()), 20000, 300);
  check(tapped, `the tap panel shows live records (${tapped})`);
  await shot(dash, 'dashboard-flow-tap');
  await dash.locator('#tap-start').click(); // stop
  check(await anon.locator('#tap-auth').isVisible(), 'without a token the tap panel says it needs the token');
  check(await anon.locator('#tap-start').isDisabled(), '... and cannot be started');

  // ---- the generator rate drives the dashboard's events/s -------------------------------------
  const inRate = () => numAttr(dash, `#health-body tr[data-pipeline="${INGEST}"] td[data-col="in"]`);
  const near = (v, want) => v !== null && Math.abs(v - want) <= want * 0.15;
  let v = await waitFor(async () => ((r) => (near(r, 100) ? r : null))(await inRate()), 30000, 500);
  check(v, `ingest events/s in is about 100 at the generator's rate 100 (${v ?? (await inRate())})`);

  const gen = await newPage(browser);
  await gen.goto(`${SLUICE}/ui/generator.html`);
  check(await waitFor(async () => (await gen.locator('#f-rate').inputValue()) === '100'), 'the generator panel reads the config from sluice-gen');
  await gen.fill('#f-rate', '300');
  await gen.click('#apply');
  const cfg = await waitFor(async () => ((await getJson(`${GEN}/gen/config`)).body?.rate === 300 ? true : null), 10000);
  check(cfg, 'Apply set rate 300 on sluice-gen (GET /gen/config)');
  v = await waitFor(async () => ((r) => (near(r, 300) ? r : null))(await inRate()), 45000, 500);
  check(v, `the dashboard's ingest events/s follows to about 300 (${v ?? (await inRate())})`);
  const outRate = () => numAttr(dash, `#health-body tr[data-pipeline="${ANALYTICS}"] td[data-col="out"]`);
  const out = await waitFor(async () => ((r) => (r > 0 ? r : null))(await outRate()), 15000, 500);
  check(out, `the analytics pipeline's events/s out is shown and positive (${out})`);
  await waitFor(async () => ((await numAttr(gen, '#stat-rate')) ?? 0) > 200, 10000);
  await shot(dash, 'dashboard-1280x800');
  await shot(gen, 'generator-1280x800');

  // ---- GMV and orders equal SQL for the same minute -------------------------------------------
  await gen.click('#toggle'); // Stop
  check(await waitFor(async () => (await getJson(`${GEN}/gen/config`)).body?.running === false, 10000), 'Stop in the panel stopped the generator');
  check(await waitFor(async () => (await gen.locator('#gen-state').textContent()) === 'Stopped', 5000), 'the panel shows it stopped');
  // stay clear of a minute boundary: emit in the first 35 s of a minute
  const sec = Number(sql(`SELECT extract(second FROM now())::int`)[0][0]);
  if (sec > 35) await sleep((61 - sec) * 1000);
  await gen.fill('#emit-count', '400');
  await gen.click('#emit');
  check(await waitFor(async () => /Emitted 400 events/.test(await gen.locator('#emit-msg').textContent()), 10000), 'emit 400 now, from the panel');

  let last = null;
  const same = await waitFor(async () => {
    const startMs = Number(await dash.locator('#kpis').getAttribute('data-window-start-ms'));
    const shownGmv = await numAttr(dash, '#hero-gmv');
    const shownOrders = await numAttr(dash, '#hero-orders');
    const rows = sql(`SELECT orders, gmv FROM kpi_1m_total WHERE window_start = to_timestamp(${Math.trunc(startMs)} / 1000.0)`);
    const [orders, gmv] = rows.length ? [Number(rows[0][0]), Number(rows[0][1])] : [0, 0];
    last = { startMs, shownGmv, shownOrders, orders, gmv };
    return orders > 0 && shownOrders === orders && Math.abs(shownGmv - gmv) < 0.005 ? last : null;
  }, 45000, 700);
  check(same, `GMV and orders shown for the minute equal kpi_1m_total: ${JSON.stringify(last)}`);
  if (same) {
    const text = await dash.locator('#hero-gmv').textContent();
    check(text === usd(same.gmv), `GMV is shown as currency: "${text}"`);
    // the table's current-minute column shows the same figures
    check((await numAttr(dash, 'td[data-kpi="orders"][data-tf="1m"]')) === same.orders, 'the table agrees with the headline');
  }
  await gen.click('#toggle'); // Start again
  check(await waitFor(async () => (await getJson(`${GEN}/gen/config`)).body?.running === true, 10000), 'Start in the panel restarts the generator');

  // ---- pause / resume from the health panel ---------------------------------------------------
  const row = dash.locator(`#health-body tr[data-pipeline="${ANALYTICS}"]`);
  await row.locator('button[data-action="pause"]').click();
  const paused = await waitFor(async () => ((await connectorState(ANALYTICS)) === 'PAUSED' ? true : null), 15000, 300);
  check(paused, `Pause in the health panel: GET /connectors/${ANALYTICS}/status says PAUSED`);
  check(await waitFor(async () => (await row.getAttribute('data-state')) === 'PAUSED', 5000), 'the panel shows it paused');
  await shot(dash, 'dashboard-paused');
  await row.locator('button[data-action="resume"]').click();
  const resumed = await waitFor(async () => ((await connectorState(ANALYTICS)) === 'RUNNING' ? true : null), 15000, 300);
  check(resumed, `Resume in the health panel: the REST API says RUNNING again`);

  // ---- phone width ------------------------------------------------------------------------------
  const phone = await newPage(browser, { width: 390, height: 844 });
  await phone.goto(`${SLUICE}/ui/`);
  await waitFor(async () => (await numAttr(phone, 'td[data-kpi="orders"][data-tf="15m"]')) !== null, 10000);
  await waitFor(async () => (await phone.locator('#health-body tr').count()) >= 2, 10000);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `no horizontal scrolling at 390 px wide (overflow ${overflow}px)`);
  await shot(phone, 'dashboard-phone');

  // ---- the server goes away ---------------------------------------------------------------------
  const pid = Number(process.env.SLUICE_PID);
  if (pid > 0) {
    process.kill(pid, 'SIGTERM');
    const banner = await waitFor(async () => ((await dash.locator('#banner').isVisible()) ? dash.locator('#banner').textContent() : null), 30000, 300);
    check(/Disconnected from sluice/.test(banner ?? ''), `a visible "disconnected" banner once sluice stopped`);
    await shot(dash, 'dashboard-disconnected');
  }
  for (const p of [anon, bad, dash, gen, phone]) check(p.errors.length === 0, `no script errors on ${p.url()} ${p.errors.join('; ')}`);
} catch (e) {
  check(false, `e2e crashed: ${e.stack ?? e}`);
} finally {
  clearTimeout(hardStop);
  await close();
}
console.log(failed() ? `# ${failed()} check(s) failed` : '# all checks passed');
process.exit(failed() ? 1 : 0);
