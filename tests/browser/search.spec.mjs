// Real-browser test of the search page (GET /), run by tests/browser/run.sh.
//
//   node tests/browser/search.spec.mjs http://127.0.0.1:PORT
//
// Needs a server with corpus/news.jsonl indexed and writes allowed without a key:
// it adds a few documents of its own (ids starting "browser-"). Drives Debian's
// /usr/bin/chromium through playwright-core, saves screenshots under
// build/browser/, and ends with "browser: N passed, M failed" (exit 1 on failure).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BASE = (process.argv[2] || process.env.XUN_URL || '').replace(/\/+$/, '');
if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+$/.test(BASE)) {
  console.error('usage: node search.spec.mjs http://127.0.0.1:PORT');
  process.exit(2);
}
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const OUT = path.join(REPO, 'build/browser');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 10_000;          // no single wait is longer than this
const TOTAL_MS = 180_000;        // the whole run, whatever happens

let passed = 0, failed = 0;
const log = (...a) => console.log(...a);

const watchdog = setTimeout(() => {
  log(`FAIL watchdog: the run took longer than ${TOTAL_MS / 1000} s`);
  log(`browser: ${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, TOTAL_MS);
watchdog.unref();

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

function assert(cond, message) { if (!cond) throw new Error(message); }

async function check(name, fn, budgetMs = 3 * STEP_MS) {
  try {
    await withTimeout(Promise.resolve().then(fn), budgetMs, name);
    passed++;
    log(`ok   ${name}`);
  } catch (e) {
    failed++;
    log(`FAIL ${name}: ${(e && e.message || String(e)).split('\n').slice(0, 6).join('\n     ')}`);
  }
}

// ---------- test data, written through the API before the browser starts ----------

async function api(method, url, body) {
  const res = await fetch(BASE + url, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(STEP_MS),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

async function until(what, fn, ms = STEP_MS) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await new Promise(r => setTimeout(r, 100));
  }
  throw new Error(`${what}: not so after ${ms} ms (last: ${last && last.message || JSON.stringify(last)})`);
}

const XSS_DOC = {
  title: '<script>alert(1)</script> 测试',
  body: '<b>粗体</b> 测试 <img src=x onerror="alert(2)">',
  source: '<i>来源</i>',
};
// Twelve dated, tagged documents: one page and a bit, for paging, sort=date, dates and tags.
const PAGED = Array.from({ length: 12 }, (_, i) => ({
  id: `browser-page-${String(i + 1).padStart(2, '0')}`,
  title: `翻页检查 第${i + 1}篇` + (i < 2 ? ' 普惠金融下沉县域' : ''),
  body: `翻页检查的正文，第${i + 1}篇。`,
  source: '浏览器测试社',
  tags: [i % 2 ? '双数' : '单数'],
  date: `2023-${String(i + 1).padStart(2, '0')}-01`,
}));

// ---------- helpers in the page ----------

// Waits until the page shows the results for exactly these URL parameters.
async function shown(page, params, { state = 'ready' } = {}) {
  await page.waitForFunction(([want, wantState]) => {
    const root = document.documentElement;
    const got = new URLSearchParams(location.search);
    const keys = new Set([...got.keys(), ...Object.keys(want)]);
    for (const k of keys) {
      const w = want[k] === undefined ? [] : [].concat(want[k]).map(String);
      const g = got.getAll(k);
      if (w.length !== g.length || w.some((v, i) => v !== g[i])) return false;
    }
    return root.dataset.state === wantState && root.dataset.for === location.search.slice(1);
  }, [params, state], { timeout: STEP_MS });
}

async function search(page, q) {
  await page.fill('#q', q);
  await page.press('#q', 'Enter');
  await shown(page, { q });
}

const hitInfo = page => page.$$eval('#results li.hit', lis => lis.map(li => ({
  title: (li.querySelector('.hit-title') || {}).textContent || '',
  source: (li.querySelector('.hit-source') || {}).textContent || '',
  date: (li.querySelector('.hit-date') || {}).textContent || '',
  href: (li.querySelector('.hit-title a') || {}).href || '',
  ems: [...li.querySelectorAll('.hit-snippet em')].map(e => e.textContent),
})));

const statusText = page => page.textContent('#status');

// ---------- the run ----------

async function main() {
  fs.mkdirSync(OUT, { recursive: true });

  await check('server is up and test documents are written', async () => {
    await until('GET /health', async () => (await api('GET', '/health')).status === 200);
    const put = await api('PUT', '/documents/browser-xss', XSS_DOC);
    assert(put.status === 201 || put.status === 200, `PUT /documents/browser-xss: ${put.status} ${put.text}`);
    const post = await api('POST', '/documents', PAGED);
    assert(post.status === 200 && post.json && post.json.indexed === PAGED.length,
      `POST /documents: ${post.status} ${post.text}`);
    await until('the written documents are searchable', async () => {
      const a = await api('GET', '/search?q=' + encodeURIComponent('翻页检查') + '&limit=0');
      const b = await api('GET', '/search?q=' + encodeURIComponent('粗体') + '&limit=0');
      return a.json && a.json.total === PAGED.length && b.json && b.json.total >= 1;
    });
  }, 2 * STEP_MS + 1000);
  if (failed) return;   // no server or no test data: the browser checks would only time out

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xun-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 800 },
      locale: 'zh-CN',
      timeout: STEP_MS,
    });
  } catch (e) {
    failed++;
    log(`FAIL launch ${CHROMIUM}: ${e.message.split('\n')[0]}`);
    fs.rmSync(userDataDir, { recursive: true, force: true });
    return;
  }

  try {
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    page.setDefaultNavigationTimeout(STEP_MS);
    const pageErrors = [];
    const dialogs = [];
    page.on('pageerror', e => pageErrors.push(e.message));
    page.on('console', m => { if (m.type() === 'error') pageErrors.push('console: ' + m.text()); });
    page.on('dialog', d => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
    const suggestRequests = [];
    page.on('request', r => { if (new URL(r.url()).pathname === '/suggest') suggestRequests.push(r.url()); });

    await check('GET / serves the search page', async () => {
      const res = await page.goto(BASE + '/', { waitUntil: 'load' });
      assert(res && res.status() === 200, `status ${res && res.status()}`);
      assert(/text\/html/.test(res.headers()['content-type'] || ''), `content-type ${res.headers()['content-type']}`);
      const box = page.locator('form[role="search"] input[type="search"]#q');
      assert(await box.count() === 1, 'no <input type="search" id="q"> inside <form role="search">');
      assert(await box.getAttribute('role') === 'combobox', '#q is not role=combobox');
      assert(await page.evaluate(() => document.activeElement && document.activeElement.id) === 'q',
        'the search box does not have focus on an empty page');
      assert(await page.locator('html').getAttribute('lang') === 'zh', 'lang is not zh');
    });

    let firstSuggestion = '';
    await check('typing 普惠 shows suggestions (one debounced /suggest call)', async () => {
      suggestRequests.length = 0;
      await page.locator('#q').pressSequentially('普惠', { delay: 40 });
      const options = page.locator('#suggestions [role="option"]');
      await options.first().waitFor({ state: 'visible' });
      const n = await options.count();
      assert(n >= 1 && n <= 8, `${n} suggestions`);
      assert(await page.getAttribute('#q', 'aria-expanded') === 'true', 'aria-expanded is not true');
      assert(await page.getAttribute('#suggestions', 'role') === 'listbox', '#suggestions is not a listbox');
      firstSuggestion = (await options.first().textContent()).trim();
      assert(firstSuggestion, 'the first suggestion is empty');
      assert(suggestRequests.length === 1, `${suggestRequests.length} /suggest requests for 2 quick keystrokes: ${suggestRequests.join(' ')}`);
      const u = new URL(suggestRequests[0]);
      assert(u.searchParams.get('q') === '普惠' && u.searchParams.get('limit') === '8', `request ${u.search}`);
    });

    await check('ArrowDown/ArrowUp move through suggestions, Escape closes them', async () => {
      const ids = await page.$$eval('#suggestions [role="option"]', os => os.map(o => o.id));
      await page.press('#q', 'ArrowDown');
      assert(await page.getAttribute('#q', 'aria-activedescendant') === ids[0], 'ArrowDown did not activate the first option');
      assert(await page.getAttribute('#' + ids[0], 'aria-selected') === 'true', 'first option not aria-selected');
      await page.press('#q', 'ArrowUp');
      const last = ids[ids.length - 1];
      assert(await page.getAttribute('#q', 'aria-activedescendant') === last, 'ArrowUp from the first did not wrap to the last');
      await page.press('#q', 'Escape');
      assert(await page.isHidden('#suggestions'), 'Escape did not close the list');
      assert(await page.getAttribute('#q', 'aria-expanded') === 'false', 'aria-expanded not false after Escape');
      assert(await page.getAttribute('#q', 'aria-activedescendant') === null, 'aria-activedescendant left set');
      assert(await page.inputValue('#q') === '普惠', 'Escape changed the typed text');
    });

    await check('Enter on a suggestion searches for its text', async () => {
      await page.press('#q', 'ArrowDown');           // reopens the list
      await page.locator('#suggestions [role="option"]').first().waitFor({ state: 'visible' });
      await page.press('#q', 'ArrowDown');           // first option
      const text = (await page.locator('#suggestions [aria-selected="true"]').textContent()).trim();
      await page.press('#q', 'Enter');
      await shown(page, { q: text });
      assert(await page.isHidden('#suggestions'), 'the list stayed open');
      assert(await page.inputValue('#q') === text, 'the box does not hold the picked text');
    });

    await check('clicking a suggestion searches for its text', async () => {
      await page.fill('#q', '');
      await page.locator('#q').pressSequentially('普惠', { delay: 20 });
      const opt = page.locator('#suggestions [role="option"]').first();
      await opt.waitFor({ state: 'visible' });
      const text = (await opt.textContent()).trim();
      await opt.click();
      await shown(page, { q: text });
    });

    await check('search "Bedrock 普惠化": count, first hit and highlighted snippet', async () => {
      await search(page, 'Bedrock 普惠化');
      const status = await statusText(page);
      assert(/共 ≥?\d+ 条结果/.test(status), `status "${status}"`);
      const hits = await hitInfo(page);
      assert(hits.length >= 1, 'no hits');
      assert(hits[0].title.includes('亚马逊云科技'), `first title "${hits[0].title}"`);
      assert(hits[0].ems.includes('普惠化'), `snippet <em>s: ${JSON.stringify(hits[0].ems)}`);
      assert(hits[0].ems.some(e => e.toLowerCase() === 'bedrock'), `no <em>Bedrock</em> in ${JSON.stringify(hits[0].ems)}`);
      await page.screenshot({ path: path.join(OUT, 'search.png'), fullPage: true });
    });

    let before = [];
    await check('source facet checkbox 中国经营报 filters the results', async () => {
      await search(page, 'AI');
      before = await hitInfo(page);
      assert(before.some(h => h.source !== '中国经营报'), `every "AI" hit is from 中国经营报: ${JSON.stringify(before.map(h => h.source))}`);
      const box = page.locator('#source-facet').getByRole('checkbox', { name: /中国经营报/ });
      assert(await box.count() === 1, 'no checkbox for 中国经营报 among the source facets');
      const label = await page.locator('#source-facet .facet', { hasText: '中国经营报' }).textContent();
      assert(/\d/.test(label), `no count beside the facet: "${label}"`);
      await box.check();
      await shown(page, { q: 'AI', source: '中国经营报' });
      const after = await hitInfo(page);
      assert(after.length >= 1 && after.length < before.length, `${before.length} hits before, ${after.length} after`);
      assert(after.every(h => h.source === '中国经营报'), `sources after: ${JSON.stringify(after.map(h => h.source))}`);
      assert(await box.isChecked(), 'the checkbox is not checked');
    });

    await check('back and forward restore the search from the URL', async () => {
      await page.goBack();
      await shown(page, { q: 'AI' });
      assert((await hitInfo(page)).length === before.length, 'back: a different number of hits');
      assert(!(await page.locator('#source-facet').getByRole('checkbox', { name: /中国经营报/ }).isChecked()), 'back: still checked');
      await page.goForward();
      await shown(page, { q: 'AI', source: '中国经营报' });
      assert(await page.inputValue('#q') === 'AI', 'forward: box text');
    });

    await check('pagination: 10 a page, next/previous, reload keeps the page', async () => {
      await search(page, '翻页检查');
      assert((await statusText(page)).includes('共 12 条结果'), `status "${await statusText(page)}"`);
      assert((await hitInfo(page)).length === 10, 'page 1 does not have 10 hits');
      assert(await page.isDisabled('#prev'), 'previous enabled on page 1');
      await page.click('#next');
      await shown(page, { q: '翻页检查', page: '2' });
      assert((await hitInfo(page)).length === 2, 'page 2 does not have 2 hits');
      assert(await page.isDisabled('#next'), 'next enabled on the last page');
      await page.reload();
      await shown(page, { q: '翻页检查', page: '2' });
      assert((await hitInfo(page)).length === 2, 'after reload, page 2 does not have 2 hits');
      await page.click('#prev');
      await shown(page, { q: '翻页检查' });
    });

    await check('sort=date orders newest first; from/to dates narrow the range', async () => {
      await page.selectOption('#sort', 'date');
      await shown(page, { q: '翻页检查', sort: 'date' });
      const dates = (await hitInfo(page)).map(h => h.date);
      assert(dates[0] === '2023-12-01', `first date ${dates[0]}`);
      assert(dates.every((d, i) => i === 0 || dates[i - 1] >= d), `not newest first: ${dates.join(' ')}`);
      await page.fill('#from', '2023-07-01');
      await shown(page, { q: '翻页检查', sort: 'date', from: '2023-07-01' });
      await page.fill('#to', '2023-09-30');
      await shown(page, { q: '翻页检查', sort: 'date', from: '2023-07-01', to: '2023-09-30' });
      const ranged = (await hitInfo(page)).map(h => h.date);
      assert(ranged.join(' ') === '2023-09-01 2023-08-01 2023-07-01', `dates in range: ${ranged.join(' ')}`);
      await page.click('#clear-filters');
      await shown(page, { q: '翻页检查', sort: 'date' });
      await page.selectOption('#sort', 'relevance');
      await shown(page, { q: '翻页检查' });
    });

    await check('tag facet 单数 filters the results', async () => {
      const box = page.locator('#tag-facet').getByRole('checkbox', { name: /单数/ });
      await box.check();
      await shown(page, { q: '翻页检查', tag: '单数' });
      assert((await statusText(page)).includes('共 6 条结果'), `status "${await statusText(page)}"`);
      const titles = (await hitInfo(page)).map(h => h.title);
      assert(titles.length === 6 && titles.every(t => /第(1|3|5|7|9|11)篇/.test(t)), `titles: ${titles.join(' | ')}`);
    });

    await check('HTML in documents is shown as text, never run', async () => {
      const scriptsBefore = await page.evaluate(() => document.scripts.length);
      await search(page, '粗体');
      const hit = page.locator('#results li.hit', { hasText: '测试' }).first();
      const title = await hit.locator('.hit-title').textContent();
      assert(title.includes('<script>alert(1)</script>'), `title text "${title}"`);
      assert(await hit.locator('.hit-title').isVisible(), 'title not visible');
      const snippet = await hit.locator('.hit-snippet').textContent();
      assert(snippet.includes('<b>') && snippet.includes('</b>') && snippet.includes('粗体'), `snippet text "${snippet}"`);
      assert(await hit.locator('.hit-source').textContent() === '<i>来源</i>', 'source not shown as text');
      const bad = await page.$$eval('#results script, #results b, #results i, #results img, #results [onerror]', els => els.length);
      assert(bad === 0, `${bad} elements from document text were created`);
      assert(await page.evaluate(() => document.scripts.length) === scriptsBefore, 'a script element was added');
      await page.waitForTimeout(300);
      assert(dialogs.length === 0, `dialogs opened: ${dialogs.join(', ')}`);
    });

    await check('API errors are shown as a readable message', async () => {
      await page.route(/\/search\?/, route => route.fulfill({
        status: 503,
        contentType: 'application/json',
        headers: { 'Retry-After': '1' },
        body: JSON.stringify({ error: { code: 'unavailable', message: 'server is overloaded, retry later' } }),
      }));
      try {
        await page.fill('#q', '出错');
        await page.press('#q', 'Enter');
        await shown(page, { q: '出错' }, { state: 'error' });
        const err = page.locator('#error');
        assert(await err.isVisible(), '#error not visible');
        const text = await err.textContent();
        assert(text.includes('server is overloaded, retry later') && text.includes('unavailable'), `error text "${text}"`);
        assert(await err.getAttribute('role') === 'alert', '#error is not role=alert');
        assert(await page.locator('#results li.hit').count() === 0, 'old hits left under the error');
      } finally {
        await page.unroute(/\/search\?/);
      }
      // A real 400 from the server, too: there is no 31 February.
      await page.goto(BASE + '/?q=' + encodeURIComponent('Bedrock') + '&from=2023-02-31');
      await shown(page, { q: 'Bedrock', from: '2023-02-31' }, { state: 'error' });
      const text = await page.textContent('#error');
      const message = (await page.textContent('#error .error-message')).trim();
      assert(text.includes('bad_request') && message.length > 0, `error text "${text}"`);
    });

    await check('phone width (375 px): no horizontal scrolling, full-width inputs', async () => {
      await page.setViewportSize({ width: 375, height: 740 });
      await page.goto(BASE + '/?q=' + encodeURIComponent('Bedrock 普惠化'));
      await shown(page, { q: 'Bedrock 普惠化' });
      const m = await page.evaluate(() => {
        const r = s => document.querySelector(s).getBoundingClientRect();
        document.querySelector('#filters').open = true;
        const out = {
          scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
          q: r('#q'), from: r('#from'), to: r('#to'), main: r('#results-area'),
        };
        document.querySelector('#filters').open = false;
        return out;
      });
      assert(m.scroll <= m.inner, `page is ${m.scroll} px wide in a ${m.inner} px window`);
      assert(m.q.width >= 0.6 * m.inner && m.q.right <= m.inner, `search box ${Math.round(m.q.left)}..${Math.round(m.q.right)}`);
      for (const k of ['from', 'to']) {
        assert(m[k].width >= m.main.width - 2 && m[k].right <= m.inner, `#${k} is ${Math.round(m[k].width)} px of ${Math.round(m.main.width)}`);
      }
      assert((await hitInfo(page))[0].title.includes('亚马逊云科技'), 'no hit on the phone');
      await page.screenshot({ path: path.join(OUT, 'search-phone.png'), fullPage: true });
    });

    await check('no JavaScript errors on the page', async () => {
      // 4xx/5xx responses are logged by Chromium as console errors: those are expected here.
      const real = pageErrors.filter(e => !/Failed to load resource/.test(e));
      assert(real.length === 0, real.join('\n'));
    });
  } finally {
    await withTimeout(context.close(), STEP_MS, 'closing the browser').catch(e => log(`note: ${e.message}`));
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (e) {
  failed++;
  log(`FAIL unexpected: ${e && e.stack || e}`);
}
log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
