// An EventSource client wire-academy did not write: the `eventsource` npm package
// (a WHATWG EventSource for Node), used by tests/sse.rs to check that a stream cut
// mid-way is resumed by the client itself, with Last-Event-ID, and nothing is lost.
//
//   node sse-client.mjs URL COUNT [TIMEOUT_MS]
//
// Prints one JSON object per line on stdout: {"type":"open"} for each (re)connection,
// {"type":"message","lastEventId":…,"data":…} for each message, {"type":"truncated",…}
// and {"type":"error",…} when they happen. Exits 0 after COUNT messages, 2 on timeout.
import { EventSource } from 'eventsource';

const [url, countArg, timeoutArg] = process.argv.slice(2);
if (!url || !countArg) {
  console.error('usage: node sse-client.mjs URL COUNT [TIMEOUT_MS]');
  process.exit(64);
}
const count = Number(countArg);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const es = new EventSource(url);
let received = 0;
es.onopen = () => print({ type: 'open' });
es.onerror = (e) => print({ type: 'error', message: e.message ?? null, code: e.code ?? null });
es.onmessage = (e) => {
  print({ type: 'message', lastEventId: e.lastEventId, data: e.data });
  received += 1;
  if (received >= count) {
    es.close();
    process.exit(0);
  }
};
es.addEventListener('truncated', (e) => print({ type: 'truncated', lastEventId: e.lastEventId, data: e.data }));

setTimeout(() => {
  print({ type: 'timeout', received });
  es.close();
  process.exit(2);
}, Number(timeoutArg ?? 20000)).unref();
