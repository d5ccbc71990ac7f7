// Shared by the browser tests: Debian's chromium driven by playwright-core (from web/node_modules;
// never a downloaded browser), a fresh profile per run, small assertion helpers.

import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = process.env.SLUICE_SOURCE_DIR ?? join(here, '..', '..');
export const BUILD_DIR = process.env.SLUICE_BUILD_DIR ?? join(SOURCE_DIR, 'build');
export const SHOT_DIR = process.env.SLUICE_SCREENSHOT_DIR ?? join(BUILD_DIR, 'screenshots');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

const require = createRequire(join(SOURCE_DIR, 'web', 'package.json'));
const { chromium } = require('playwright-core');

/** Builds web/dist (npm run build) when it is missing or older than its sources. */
export function ensureDist() {
  const web = join(SOURCE_DIR, 'web');
  const built = join(web, 'dist', 'index.html');
  const newest = (p) => {
    const st = statSync(p);
    if (!st.isDirectory()) return st.mtimeMs;
    return Math.max(0, ...readdirSync(p).map((f) => newest(join(p, f))));
  };
  const src = Math.max(...['src', 'index.html', 'generator.html'].map((f) => newest(join(web, f))));
  if (existsSync(built) && statSync(built).mtimeMs >= src) return;
  console.log('# building web/dist');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: web, stdio: ['ignore', 'ignore', 'inherit'] });
}

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
  mkdirSync(SHOT_DIR, { recursive: true });
  // a persistent context is how playwright takes a fresh --user-data-dir
  let browser;
  try {
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 800 },
      locale: 'en-US',
      reducedMotion: 'reduce',
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    });
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** A page that records console errors and failed assertions' context. */
export async function newPage(browser, viewport = { width: 1280, height: 800 }) {
  const page = await browser.newPage();
  await page.setViewportSize(viewport);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  return page;
}

export async function shot(page, name) {
  const file = join(SHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`# screenshot ${file}`);
}

let failures = 0;
export function check(cond, msg) {
  if (cond) console.log(`ok - ${msg}`);
  else {
    failures++;
    console.log(`not ok - ${msg}`);
  }
  return cond;
}
export function failed() {
  return failures;
}

/** Polls fn until it returns a truthy value or `ms` pass; returns the last value. */
export async function waitFor(fn, ms = 15000, every = 250) {
  const end = Date.now() + ms;
  let v;
  for (;;) {
    try {
      v = await fn();
    } catch (e) {
      v = undefined;
    }
    if (v || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, every));
  }
}

/** The data-value of the first element matching sel, as a number (null when empty/missing). */
export async function numAttr(page, sel) {
  const v = await page.locator(sel).first().getAttribute('data-value', { timeout: 2000 }).catch(() => null);
  return v === null || v === '' ? null : Number(v);
}
