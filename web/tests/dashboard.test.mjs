// Browser tests of the metrics dashboard (web/dashboard.html): headless
// Debian Chromium, driven by playwright-core, against the local stack started
// here, with chat traffic from WebSocket clients in this process.
//
// Run with web/tests/run.sh, or `npm test` in web/tests.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import WebSocket from 'ws';
import {
  artifacts, launchBrowser, startStack, stopAllStacks, webDir,
} from './stack.mjs';

/** Where chat-local serves the dashboard. */
const DASHBOARD_PATH = '/dashboard';
const TEST_TIMEOUT = 90_000;
// Reads /metrics twice a second, so the tests need not wait long.
const FAST = '?interval=0.5';

let browser;
let stack;
const contexts = new Set();
const clients = new Set();

before(async () => {
  browser = await launchBrowser();
  stack = await startStack();
});

afterEach(async () => {
  for (const client of clients) client.terminate();
  clients.clear();
  for (const context of contexts) await context.close().catch(() => {});
  contexts.clear();
});

after(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  if (browser) await browser.close();
  await stopAllStacks();
});

const dashboardUrl = (query = '') => new URL(`${DASHBOARD_PATH}${query}`, stack.page).href;

/**
 * Opens a page and records what must never happen on it: page errors,
 * console errors, dialogs, CSP violations and requests that leave the stack.
 */
async function openPage(url, { viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(15_000);
  contexts.add(context);
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (event) => {
      window.__csp.push(`${event.violatedDirective} ${event.blockedURI}`);
    });
  });
  const page = await context.newPage();
  page.problems = [];
  page.consoleErrors = [];
  page.requests = [];
  page.on('pageerror', (error) => page.problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') page.consoleErrors.push(message.text());
  });
  page.on('dialog', (dialog) => {
    page.problems.push(`dialog: ${dialog.type()} ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  page.on('request', (request) => page.requests.push(request.url()));
  await page.goto(url);
  return page;
}

/** No errors, no CSP violations, and every request went to the stack itself. */
async function assertClean(page, { allowConsole = [] } = {}) {
  assert.deepEqual(page.problems, [], 'no page errors or dialogs');
  const consoleErrors = page.consoleErrors.filter((text) => !allowConsole.some((pattern) => pattern.test(text)));
  assert.deepEqual(consoleErrors, [], 'no console errors');
  assert.deepEqual(await page.evaluate(() => window.__csp), [], 'no Content-Security-Policy violations');
  const origin = `http://127.0.0.1:${stack.port}/`;
  const away = page.requests.filter((url) => !url.startsWith(origin) && !url.startsWith('data:'));
  assert.deepEqual(away, [], `every request went to ${origin}`);
}

/** The dashboard's panels as dashboard.js holds them, with each chart's data. */
const panels = (page) => page.evaluate(() => window.chatDashboard.panels());

async function panel(page, id) {
  return (await panels(page)).find((p) => p.id === id);
}

/** Waits until `check(panel)` holds for the panel `id`, as dashboard.js holds it. */
async function waitForPanel(page, id, check, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const found = await panel(page, id);
    if (found && check(found)) return found;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting on panel ${id} for ${check}; it holds ${JSON.stringify(found?.series)}`);
    }
    await sleep(100);
  }
}

/** The chart's column for one series label (uPlot's data: [times, ...series]). */
function column(p, label) {
  const i = p.series.findIndex((s) => s.label === label);
  assert.ok(i >= 0, `${p.id} has a series ${label}`);
  return p.chartData[i + 1];
}

const readout = (page, panelId, label) =>
  page.locator(`#panel-${panelId} .readout li[data-series="${label}"] .value`).textContent();

// ------------------------------------------------------------ the clients

async function connectClient() {
  const client = new WebSocket(stack.ws);
  clients.add(client);
  await new Promise((resolve, reject) => {
    client.once('open', resolve);
    client.once('error', reject);
  });
  return client;
}

const sendMessage = (client, message) => client.send(JSON.stringify({ action: 'sendmessage', message }));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Chat traffic: each client in turn sends one message every `everyMs`. */
function chatter(senders, everyMs) {
  let n = 0;
  const timer = setInterval(() => {
    const client = senders[n % senders.length];
    if (client.readyState === WebSocket.OPEN) sendMessage(client, `load ${n}`);
    n += 1;
  }, everyMs);
  return { stop: () => clearInterval(timer), sent: () => n };
}

// ----------------------------------------------------------------- tests

test('the chat page links to the dashboard and back', { timeout: TEST_TIMEOUT }, async () => {
  const page = await openPage(stack.page);
  await page.waitForSelector('#app[data-ready="true"]');
  await page.click('#dashboard-link');
  await page.waitForURL((url) => url.pathname === DASHBOARD_PATH);
  await page.waitForSelector('#dashboard[data-polls]:not([data-polls="0"])');
  await page.click('text=Back to the chat');
  await page.waitForURL((url) => url.pathname === '/');
  await page.waitForSelector('#app[data-ready="true"]');
  await assertClean(page);
});

test('draws the stack\'s metrics live: connections, messages per second, fan-out latency, sessions, stream lag', { timeout: TEST_TIMEOUT }, async () => {
  // A stack of its own, so that nothing has been recorded before the page opens.
  const own = await startStack();
  const saved = stack;
  stack = own;
  try {
    // A 30-second window, so that a few seconds of traffic fill the charts.
    const page = await openPage(dashboardUrl(`${FAST}&window=30`));
    await page.waitForFunction(() => Number(document.getElementById('dashboard').dataset.polls) >= 2, null, { polling: 100 });
    assert.equal(await page.getAttribute('#dashboard', 'data-state'), 'live');
    assert.match(await page.textContent('#status'), /^Live: updated \d\d:\d\d:\d\d UTC$/);

    // Nothing recorded yet: every panel says so, and nothing broke.
    const fresh = await page.$$eval('.card', (cards) => cards.map((card) => ({
      id: card.dataset.panel,
      state: card.dataset.state,
      noData: card.querySelector('.no-data').hidden ? '' : card.querySelector('.no-data').textContent,
    })));
    assert.deepEqual(fresh.map((card) => card.id), [
      'connections', 'sessions', 'session-duration', 'messages', 'fanout-latency',
      'fanout-recipients', 'handoffs', 'failures', 'stream-lag',
    ]);
    for (const card of fresh) assert.deepEqual(card, { id: card.id, state: 'no-data', noData: 'No data yet' });
    assert.equal(await readout(page, 'messages', 'messages_sent'), 'no data yet');

    // Three people chat for a few seconds; one message is refused (empty).
    const people = [await connectClient(), await connectClient(), await connectClient()];
    const load = chatter(people, 80);
    await sleep(300);
    sendMessage(people[0], '');

    // Messages per second: the chart got points, and they are about the rate sent.
    await waitForPanel(page, 'messages', (p) => p.series[0].values.filter((v) => v > 0).length >= 3);
    const messages = await panel(page, 'messages');
    const sentPerSecond = column(messages, 'messages_sent').filter((v) => v !== null && v > 0);
    assert.ok(sentPerSecond.length >= 3, `messages_sent points: ${sentPerSecond}`);
    const median = [...sentPerSecond].sort((a, b) => a - b)[Math.floor(sentPerSecond.length / 2)];
    assert.ok(median > 5 && median < 30, `about 12.5 messages/s sent, the chart says ${sentPerSecond}`);
    assert.equal(messages.chartData[0].length, messages.series[0].values.length, 'one time per point');
    await waitForPanel(page, 'messages', (p) => p.series[1].values.some((v) => v > 0));
    assert.equal(await page.getAttribute('#panel-messages', 'data-state'), 'data');
    assert.ok(Number(await page.getAttribute('#panel-messages', 'data-points')) >= 3);
    assert.equal(await page.isHidden('#panel-messages .no-data'), true);
    assert.match(await readout(page, 'messages', 'messages_sent'), /^[\d.]+\/s · \d+ total$/);

    // Fan-out latency by kind: p50 and p99 of chat messages, in ms, p99 >= p50.
    await waitForPanel(page, 'fanout-latency', (p) => p.series[0].values.some((v) => v > 0) && p.series[2].values.some((v) => v > 0));
    const latency = await panel(page, 'fanout-latency');
    const p50 = column(latency, 'fanout_latency message p50');
    const p99 = column(latency, 'fanout_latency message p99');
    const drawn = p50.map((v, i) => [v, p99[i]]).filter(([a, b]) => a !== null && b !== null);
    assert.ok(drawn.length >= 1, 'message fan-out latency has points');
    for (const [a, b] of drawn) {
      assert.ok(a > 0 && a < 5_000, `p50 ${a} ms`);
      assert.ok(b >= a, `p99 ${b} >= p50 ${a}`);
    }
    assert.ok(column(latency, 'fanout_latency presence p50').some((v) => v > 0), 'presence fan-outs too');
    assert.match(await readout(page, 'fanout-latency', 'fanout_latency message p99'), /^[\d.]+ ms$/);

    // Connections now: the three clients (the dashboard has no socket).
    await waitForPanel(page, 'connections', (p) => p.series[0].values[p.series[0].values.length - 1] === 3);
    assert.equal(await readout(page, 'connections', 'connections_open'), '3');
    // Stream lag: the poller handed records over, so there is an age.
    await waitForPanel(page, 'stream-lag', (p) => p.series[0].seen && p.series[0].values.some((v) => v !== null));
    await waitForPanel(page, 'fanout-recipients', (p) => p.series[0].values.some((v) => v >= 3));

    // One leaves: a disconnect and a session duration.
    people[2].close();
    await waitForPanel(page, 'session-duration', (p) => p.series[0].values.some((v) => v > 0));
    await waitForPanel(page, 'sessions', (p) => p.series.find((s) => s.label === 'disconnects').values.some((v) => v > 0));
    await waitForPanel(page, 'connections', (p) => p.series[0].values[p.series[0].values.length - 1] === 2);

    // No batch failed: a metric never recorded reads "no data yet" next to those that were.
    assert.equal(await page.getAttribute('#panel-failures', 'data-state'), 'data');
    assert.equal(await readout(page, 'failures', 'stream_records_failed'), 'no data yet');
    assert.equal(await readout(page, 'failures', 'fanout_failures message'), '0/s · 0 total');

    // Hovering a chart reads the values at that moment.
    const box = await page.locator('#panel-messages .u-over').boundingBox();
    await page.mouse.move(box.x + box.width - 8, box.y + box.height / 2);
    await page.mouse.move(box.x + box.width - 4, box.y + box.height / 2);
    assert.match(await readout(page, 'messages', 'messages_sent'), /^([\d.]+\/s|—)$/);
    await page.mouse.move(0, 0);

    // Traffic that changes pace, for a screenshot worth looking at.
    load.stop();
    const faster = chatter(people.slice(0, 2), 40);
    await sleep(3_000);
    faster.stop();
    const third = await connectClient();
    const slower = chatter([third, people[0]], 200);
    await sleep(3_000);
    slower.stop();
    await page.screenshot({ path: path.join(artifacts, 'dashboard.png'), fullPage: true });
    assert.match(await page.textContent('.intro'), /every\s+0\.5 s:[^]*Last 30 s,/);

    // Phone-sized: one column, nothing sideways.
    await page.setViewportSize({ width: 375, height: 800 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page is ${overflow} px wider than a 375 px screen`);
    await page.screenshot({ path: path.join(artifacts, 'dashboard-phone.png') });

    // Dark mode redraws the charts in its colours, with the data kept.
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.waitForTimeout(300);
    const redrawn = await panel(page, 'messages');
    assert.ok(column(redrawn, 'messages_sent').some((v) => v > 0), 'the data survived the redraw');
    await page.screenshot({ path: path.join(artifacts, 'dashboard-dark.png'), fullPage: true });

    await assertClean(page);
    assert.ok(page.requests.some((url) => url.endsWith('/metrics')), 'it read /metrics');
  } finally {
    stack = saved;
    await own.stop();
  }
});

test('missing metrics, odd text, a restarted counter and a failing /metrics do not break the page', { timeout: TEST_TIMEOUT }, async () => {
  // /metrics answers what the test says, in turn.
  let reply = { status: 200, body: '' };
  const page = await openPage('about:blank');
  await page.route(/\/metrics$/, (route) => route.fulfill({
    status: reply.status,
    contentType: 'text/plain; version=0.0.4',
    body: reply.body,
  }));
  const polls = async () => Number(await page.getAttribute('#dashboard', 'data-polls'));
  const errors = async () => Number(await page.getAttribute('#dashboard', 'data-errors'));
  const nextPoll = async () => {
    const seen = await polls();
    await page.waitForFunction((n) => Number(document.getElementById('dashboard').dataset.polls) > n, seen, { polling: 50 });
  };

  const odd = [
    '# HELP messages_sent Chat messages accepted and stored',
    '# TYPE messages_sent counter',
    'messages_sent 5',
    'this line is not a sample',
    'weird{label="quote \\" comma , brace } done"} 1',
    'unterminated{label="oops 1',
    'session_duration{quantile="0.5"} NaN',
    'session_duration{quantile="0.99"} +Inf',
    'session_duration_count 1',
    'connections_open 4 1700000000000',
    '',
  ].join('\n');
  reply = { status: 200, body: odd };
  await page.goto(dashboardUrl('?interval=0.3'));
  await page.waitForFunction(() => Number(document.getElementById('dashboard').dataset.polls) >= 2, null, { polling: 50 });

  // The parser, on the cases above and more.
  const parsed = await page.evaluate((text) => window.chatDashboard.parsePrometheus(text), odd);
  assert.deepEqual(parsed.map((s) => s.name), ['messages_sent', 'weird', 'session_duration', 'session_duration', 'session_duration_count', 'connections_open']);
  assert.deepEqual(parsed[1].labels, { label: 'quote " comma , brace } done' });
  assert.ok(Number.isNaN(parsed[2].value));
  assert.equal(parsed[3].value, Infinity);
  assert.equal(parsed[5].value, 4, 'a timestamp after the value is ignored');
  const extra = await page.evaluate(() => window.chatDashboard.parsePrometheus(
    'a{x="1",y="b\\\\c\\nd",} 1.5e3\nb -Inf\nc{quantile="0.99"} 2.5e-1 123\n',
  ).map((s) => [s.name, s.labels, String(s.value)]));
  assert.deepEqual(extra, [
    ['a', { x: '1', y: 'b\\c\nd' }, '1500'],
    ['b', {}, '-Infinity'],
    ['c', { quantile: '0.99' }, '0.25'],
  ]);

  // What is there is drawn; what is not says "no data yet".
  assert.equal(await page.getAttribute('#panel-connections', 'data-state'), 'data');
  assert.equal(await readout(page, 'connections', 'connections_open'), '4');
  assert.equal(await page.getAttribute('#panel-fanout-latency', 'data-state'), 'no-data');
  assert.equal(await page.isVisible('#panel-fanout-latency .no-data'), true);
  assert.equal(await page.textContent('#panel-fanout-latency .no-data'), 'No data yet');
  for (const label of ['fanout_latency message p50', 'fanout_latency presence p99']) {
    assert.equal(await readout(page, 'fanout-latency', label), 'no data yet');
  }
  assert.equal(await page.getAttribute('#panel-stream-lag', 'data-state'), 'no-data');
  // A summary whose quantiles are not numbers: known, but nothing to draw.
  assert.equal(await page.getAttribute('#panel-session-duration', 'data-state'), 'data');
  assert.equal(await readout(page, 'session-duration', 'session_duration p50'), '—');
  assert.equal((await panel(page, 'session-duration')).series.every((s) => s.values.every((v) => v === null)), true);

  // The counter goes up: a rate. Then it restarts lower: still a rate, never negative.
  reply = { status: 200, body: odd.replace('messages_sent 5', 'messages_sent 25') };
  await nextPoll();
  await nextPoll();
  reply = { status: 200, body: odd.replace('messages_sent 5', 'messages_sent 2') };
  await nextPoll();
  await nextPoll();
  const rates = (await panel(page, 'messages')).series[0].values.filter((v) => v !== null);
  assert.ok(rates.some((v) => v > 0), `a rate after the increase: ${rates}`);
  assert.ok(rates.every((v) => v >= 0), `no negative rate: ${rates}`);
  assert.match(await readout(page, 'messages', 'messages_sent'), /· 2 total$/);

  // /metrics fails: the status says so, the lines get a gap; then it recovers.
  reply = { status: 503, body: 'metrics recorder not installed' };
  await page.waitForFunction(() => document.getElementById('dashboard').dataset.state === 'error', null, { polling: 50 });
  assert.equal(await page.textContent('#status'), 'Cannot read /metrics: HTTP 503 (metrics recorder not installed). Retrying…');
  assert.ok(await errors() >= 1);
  assert.equal(await page.getAttribute('#status-dot', 'class'), 'dot error');
  reply = { status: 200, body: odd };
  await page.waitForFunction(() => document.getElementById('dashboard').dataset.state === 'live', null, { polling: 50 });
  const connections = (await panel(page, 'connections')).series[0].values;
  assert.ok(connections.includes(null), 'a gap where /metrics failed');
  assert.equal(connections[connections.length - 1], 4);

  await assertClean(page, { allowConsole: [/status of 503/] });
});

test('the vendored chart library is uPlot from npm, unchanged, with its licence', () => {
  const require = createRequire(import.meta.url);
  const packageDir = path.dirname(require.resolve('uplot/package.json'));
  const { version, license } = JSON.parse(fs.readFileSync(path.join(packageDir, 'package.json'), 'utf8'));
  const pinned = JSON.parse(fs.readFileSync(new URL('./package.json', import.meta.url), 'utf8')).devDependencies.uplot;
  assert.equal(version, pinned, 'node_modules holds the pinned version: run npm ci');
  assert.equal(license, 'MIT');
  const vendor = path.join(webDir, 'vendor', 'uplot');
  for (const [vendored, original] of [
    ['uPlot.iife.min.js', 'dist/uPlot.iife.min.js'],
    ['uPlot.min.css', 'dist/uPlot.min.css'],
    ['LICENSE', 'LICENSE'],
  ]) {
    assert.ok(
      fs.readFileSync(path.join(vendor, vendored)).equals(fs.readFileSync(path.join(packageDir, original))),
      `web/vendor/uplot/${vendored} is uplot@${version}'s ${original}`,
    );
  }
  assert.deepEqual(fs.readdirSync(vendor).sort(), ['LICENSE', 'uPlot.iife.min.js', 'uPlot.min.css']);
  assert.match(fs.readFileSync(path.join(vendor, 'uPlot.iife.min.js'), 'utf8').slice(0, 100), new RegExp(`\\(v${version.replace(/\./g, '\\.')}\\)`));
  // The page loads exactly these.
  const html = fs.readFileSync(path.join(webDir, 'dashboard.html'), 'utf8');
  assert.match(html, /<script src="vendor\/uplot\/uPlot\.iife\.min\.js" defer><\/script>/);
  assert.match(html, /<link rel="stylesheet" href="vendor\/uplot\/uPlot\.min\.css">/);
});
