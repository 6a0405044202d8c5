// The dashboard (GET /) in a real browser: Debian's Chromium, driven by playwright-core.
// Run by tests/dashboard.rs, which owns the server process:
//
//   node dashboard.mjs BASE_URL SCREENSHOT_PATH
//
// The test and this script talk in JSON lines. This script asks on stdout
// ({"ask":"publish","text":…} -> the test publishes and answers {"id":N};
// {"ask":"restart"} -> the test stops the server and starts a new one on the same port,
// then answers {"restarted":true}) and ends with {"done":{…}}. Everything for people goes
// to stderr. Exit 0 when every check passed; 1 with the reason otherwise.
//
// What is checked, in order:
//   1. all four panes report connected;
//   2. a message published by the test reaches all four panes with the same id (latency
//      "—": not this page's message); one typed in the page's box too (with a latency),
//      and one sent over the WebSocket pane's socket; ?channel= switches channel (and a
//      bad name falls back to lobby, saying so);
//   3. resuming within one server: while messages are published, each pane's connection
//      is cut (window.__academy.drop) and the pane resumes from its cursor: every id
//      arrives exactly once, in order, with no gap;
//   4. a server restart on the same port: the WebSocket pane reconnects by itself (with
//      backoff), the EventSource reconnects by itself (the browser's own retry, sending
//      Last-Event-ID), the poll panes resume; the new server's ids start at 1 again, so
//      each pane is told "truncated" and shows it, then receives the new messages, with
//      nothing repeated;
//   5. the auto-publish control publishes at the rate asked, and stops; the trace pane
//      (GET /trace) shows the server's annotated bytes while open;
//   6. no console error and no uncaught exception, except the network errors a browser
//      logs while the server is down during the restart;
// and a screenshot (1280x800) is written to SCREENSHOT_PATH.
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const [base, screenshotPath] = process.argv.slice(2);
if (!base || !screenshotPath) {
  console.error('usage: node dashboard.mjs BASE_URL SCREENSHOT_PATH');
  process.exit(64);
}
const KINDS = ['short-poll', 'long-poll', 'sse', 'websocket'];
const say = (...args) => console.error('[dashboard.mjs]', ...args);

// One question to the Rust test, one answer back.
const answers = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function ask(question) {
  process.stdout.write(JSON.stringify(question) + '\n');
  const { value, done } = await answers.next();
  if (done) throw new Error(`the test went away while asked ${JSON.stringify(question)}`);
  return JSON.parse(value);
}

class CheckFailed extends Error {}
function check(ok, what, detail) {
  if (!ok) throw new CheckFailed(`${what}${detail === undefined ? '' : `\n${JSON.stringify(detail, null, 1)}`}`);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-component-update', '--disable-sync'],
});
// Whatever happens, the browser goes too, and a stuck run ends with what it saw.
const watchdog = setTimeout(async () => {
  say('TIMEOUT after 150 s');
  try { say(JSON.stringify(await page.evaluate(() => __academy.state()))); } catch { /* page gone */ }
  await browser.close().catch(() => {});
  process.exit(1);
}, 150_000);

const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });

// Console errors and uncaught exceptions, with the phase they happened in. While the
// server is down (the restart), a browser logs its failed connections as errors; those,
// and only those, are expected then.
let phase = 'start';
const logged = [];
page.on('console', (m) => {
  if (m.type() === 'error' || m.type() === 'warning') logged.push({ phase, type: m.type(), text: m.text() });
});
page.on('pageerror', (e) => logged.push({ phase, type: 'pageerror', text: String(e.stack ?? e) }));
const NETWORK_DOWN = /net::ERR_CONNECTION_REFUSED|net::ERR_CONNECTION_RESET|net::ERR_EMPTY_RESPONSE|net::ERR_CONNECTION_CLOSED|WebSocket connection to '[^']+' failed/;

const state = () => page.evaluate(() => __academy.state());

// Polls the page's state until `ok(state)` holds; on timeout, fails with the state.
async function until(what, ok, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await state();
    if (ok(s)) return s;
    if (Date.now() > deadline) throw new CheckFailed(`timed out waiting for: ${what}\n${JSON.stringify(summary(s), null, 1)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// A pane's events in a compact form for messages: ids, "T" for truncated.
const compact = (events) => events.map((e) => ('id' in e ? e.id : 'truncated' in e ? 'T' : JSON.stringify(e)));
function summary(s) {
  return Object.fromEntries(KINDS.map((k) => [k, { state: s[k].state, cursor: s[k].cursor,
    events: compact(s[k].events).slice(-60).join(' '), reconnects: s[k].reconnects }]));
}
const lastId = (pane) => [...pane.events].reverse().find((e) => 'id' in e)?.id;
const has = (pane, id) => pane.events.some((e) => e.id === id);
const allConnected = (s) => KINDS.every((k) => s[k].state === 'connected');
const noErrors = (s, k) => check(s[k].repeated === 0 && s[k].skipped === 0, `${k}: an id repeated or skipped`, summary(s)[k]);

// The text a pane shows for message `id` (its log line), and its latency column.
const line = (kind, id) => page.locator(`#pane-${kind} li.msg[data-id="${id}"]`);

let exitCode = 0;
try {
  // 1. Connected. ----------------------------------------------------------------------
  const res = await page.goto(`${base}/`);
  check(res.status() === 200, `GET / answered ${res.status()}`);
  check(res.headers()['content-type'] === 'text/html; charset=utf-8', 'Content-Type', res.headers());
  check(await page.evaluate(() => __academy.channel) === 'lobby', 'the default channel is lobby');
  await until('all four panes connected', allConnected);
  say('all four panes connected');

  // 2. One message, four transports, one id. --------------------------------------------
  const { id: first } = await ask({ ask: 'publish', text: 'hello from the test' });
  let s = await until(`message ${first} in every pane`, (s) => KINDS.every((k) => has(s[k], first)));
  for (const k of KINDS) {
    check(lastId(s[k]) === first, `${k} shows ${first} last`, summary(s)[k]);
    await line(k, first).waitFor();
    const text = await line(k, first).innerText();
    check(text.includes('hello from the test') && text.includes('—'),
      `${k}: the line for ${first} shows the text, and "—" for a message from elsewhere`, text);
  }
  say(`message ${first} (published by the test) shown by all four panes`);

  // ?channel= : another page on another channel sees that channel only; a name outside
  // API.md's rule falls back to lobby, and says so.
  const other = await browser.newPage();
  await other.goto(`${base}/?channel=room-2`);
  check(await other.evaluate(() => __academy.channel) === 'room-2', '?channel=room-2 is the channel');
  await other.waitForFunction(() => Object.values(__academy.state()).every((p) => p.state === 'connected'));
  const elsewhere = await (await fetch(`${base}/publish/room-2`, { method: 'POST', body: 'in room-2' })).json();
  await other.waitForFunction((id) => Object.values(__academy.state()).every((p) => p.cursor === id), elsewhere.id);
  await other.goto(`${base}/?channel=no%20spaces`);
  check(await other.evaluate(() => __academy.channel) === 'lobby', 'a bad channel name falls back to lobby');
  check((await other.textContent('#start-note')).includes('is not a channel name'), 'and the page says so');
  await other.close();
  s = await state();
  check(KINDS.every((k) => lastId(s[k]) === first), 'room-2 did not reach the lobby page', summary(s));

  await page.fill('#publish-text', 'typed in the box');
  await page.click('#publish-button');
  await page.waitForFunction(() => /id \d+/.test(document.getElementById('publish-result').textContent));
  const typed = Number((await page.textContent('#publish-result')).match(/id (\d+)/)[1]);
  s = await until(`message ${typed} in every pane`, (s) => KINDS.every((k) => has(s[k], typed)));
  for (const k of KINDS) {
    const lat = await line(k, typed).locator('.lat').innerText();
    check(/^\d+(\.\d)? ms$/.test(lat), `${k}: a latency for the page's own message ${typed}`, lat);
    check(!(await line(k, typed).innerText()).includes('[t='), `${k}: the latency tag is not shown as text`);
  }
  say(`message ${typed} (typed in the box) shown with a latency by all four panes`);

  await page.evaluate(() => __academy.publish('over the socket', 'websocket'));
  s = await until('the message sent over the WebSocket in every pane',
    (s) => KINDS.every((k) => lastId(s[k]) === typed + 1));
  check(s.websocket.bytesOut > 0, 'the WebSocket pane counted the frame it sent');
  for (const k of KINDS) noErrors(s, k);

  // 3. Resume without loss within one server. -------------------------------------------
  // Each pane's connection is cut while messages are being published; each resumes from
  // its cursor and must end with every id exactly once, in order.
  const before = await state();
  const startAt = Object.fromEntries(KINDS.map((k) => [k, before[k].events.length]));
  const DROPS = { 4: 'websocket', 8: 'sse', 12: 'long-poll', 16: 'short-poll', 20: 'websocket', 24: 'sse', 28: 'long-poll' };
  const ids = [];
  for (let i = 1; i <= 32; i++) {
    const r = await fetch(`${base}/publish/lobby`, { method: 'POST', body: `burst ${i}` });
    check(r.ok, `publish burst ${i}: ${r.status}`);
    ids.push((await r.json()).id);
    if (DROPS[i]) {
      const dropped = await page.evaluate((k) => __academy.drop(k), DROPS[i]);
      say(`burst ${i}: dropped ${DROPS[i]}${dropped ? '' : ' (nothing in flight)'}`);
    }
    await new Promise((r) => setTimeout(r, 40));
  }
  const lastBurst = ids.at(-1);
  s = await until(`burst up to ${lastBurst} in every pane`, (s) => KINDS.every((k) => s[k].cursor === lastBurst), 20_000);
  for (const k of KINDS) {
    const got = compact(s[k].events.slice(startAt[k]));
    check(JSON.stringify(got) === JSON.stringify(ids), `${k}: every id exactly once, in order, across the drops`,
      { got, want: ids });
    noErrors(s, k);
  }
  check(s.websocket.reconnects.page >= 2, 'the WebSocket pane reconnected after each drop', s.websocket.reconnects);
  check(s.sse.reconnects.page >= 2, 'the SSE pane reopened after each drop', s.sse.reconnects);
  say(`burst of ${ids.length} with 7 drops: every pane has ${ids[0]}…${lastBurst}, once each, in order`);

  // 4. A restart on the same port. ------------------------------------------------------
  phase = 'restart';
  const preRestart = await state();
  const mark = Object.fromEntries(KINDS.map((k) => [k, preRestart[k].events.length]));
  const browserRetries = preRestart.sse.reconnects.browser;
  await ask({ ask: 'restart' });
  say('the server restarted on the same port');
  // Each pane reconnects and is told "truncated": its cursor is from the old server,
  // whose ids the new one (an in-memory broker) does not have.
  s = await until('every pane reconnected and told truncated',
    (s) => allConnected(s) && KINDS.every((k) => s[k].events.slice(mark[k]).some((e) => e.truncated)), 30_000);
  phase = 'after-restart';
  const { id: fresh } = await ask({ ask: 'publish', text: 'after the restart' });
  check(fresh === 1, `the restarted in-memory server starts its ids at 1 (got ${fresh})`);
  s = await until(`message ${fresh} in every pane after the restart`, (s) => KINDS.every((k) => lastId(s[k]) === fresh));
  for (const k of KINDS) {
    const got = compact(s[k].events.slice(mark[k]));
    check(JSON.stringify(got) === JSON.stringify(['T', fresh]),
      `${k}: after the restart exactly one truncated notice, then the new message, nothing repeated`, got);
    noErrors(s, k);
    check(await page.locator(`#pane-${k} li.gap`).count() >= 1, `${k}: the gap is shown in the pane`);
  }
  check(s.sse.reconnects.browser > browserRetries,
    'the EventSource reconnected by itself (the browser, with Last-Event-ID), not reopened by the page', s.sse.reconnects);
  check(s.websocket.reconnects.page >= 3, 'the WebSocket pane reconnected after the restart', s.websocket.reconnects);
  say(`after the restart every pane showed the gap, then message ${fresh}; the EventSource came back by itself`);

  // The auto-publish control, for a few seconds (and for the picture): 4 messages a
  // second, from the page, each with a latency; then the picture.
  await page.fill('#rate', '4');
  await page.click('#auto-button');
  await page.waitForTimeout(2600);
  await page.click('#auto-button');
  check(await page.textContent('#auto-button') === 'start', 'the auto-publish button stops');
  const published = await page.evaluate(() => fetch(`/poll/${__academy.channel}`).then((r) => r.json()).then((b) => b.next));
  check(published >= fresh + 8, `auto-publish at 4/s published about 10 messages (the head is ${published})`);
  s = await until('the auto-published messages in every pane', (s) => KINDS.every((k) => s[k].cursor === published));
  for (const k of KINDS) {
    check(s[k].latencies.length >= 10, `${k}: a latency for each message the page published`, s[k].latencies);
    noErrors(s, k);
  }
  await page.waitForTimeout(1200); // one more short poll on the timeline, and /stats on the panes
  await page.screenshot({ path: screenshotPath });
  say(`screenshot: ${screenshotPath}`);

  // The trace pane (the server runs with --trace-out): opened, it streams the server's
  // annotated bytes, a publish from outside and the WebSocket frames to this page among
  // them; closed, it stops.
  await page.click('#trace-box summary');
  await page.waitForFunction(() => document.getElementById('trace-status').textContent.startsWith('streaming'));
  const { id: traced } = await ask({ ask: 'publish', text: 'watched in the trace' });
  await page.waitForFunction(() => {
    const t = document.getElementById('trace').textContent;
    return t.includes('http request line: POST /publish/lobby HTTP/1.1') && t.includes('watched in the trace')
      // Chromium offered permessage-deflate and the server took it: RSV1 set, and
      // the trace shows what each frame inflates to.
      && t.includes('ws frame FIN=1 RSV=100 opcode=0x1 text MASK=0') && t.includes('ws inflated payload');
  }, null, { timeout: 10_000 });
  await page.click('#trace-box summary');
  await page.waitForFunction(() => document.getElementById('trace-status').textContent === 'closed');
  say(`the trace pane showed message ${traced}'s publish and the WebSocket frames carrying it`);

  // 6. The console. ---------------------------------------------------------------------
  const unexpected = logged.filter((l) => !(l.phase === 'restart' && l.type === 'error' && NETWORK_DOWN.test(l.text)));
  check(unexpected.length === 0, 'no console error or uncaught exception (outside the server being down)', unexpected);
  const final = await state();
  process.stdout.write(JSON.stringify({ done: {
    first, typed, burst: ids, fresh,
    loggedWhileDown: logged.map((l) => l.text),
    panes: Object.fromEntries(KINDS.map((k) => [k, { received: final[k].received, requests: final[k].requests,
      bytesIn: final[k].bytesIn, gaps: final[k].gaps, reconnects: final[k].reconnects }])),
  } }) + '\n');
} catch (e) {
  say(e instanceof CheckFailed ? `CHECK FAILED: ${e.message}` : e.stack);
  if (logged.length) say('console:', JSON.stringify(logged, null, 1));
  exitCode = 1;
} finally {
  clearTimeout(watchdog);
  await browser.close().catch(() => {});
}
process.exit(exitCode);
