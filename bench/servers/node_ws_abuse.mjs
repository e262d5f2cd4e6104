// Server on Node's `ws` package for bench/bench_abuse.py, with the library's defaults (maxPayload 100 MiB,
// perMessageDeflate off on a server, no keepalive pings; ws answers pings itself) unless told otherwise.
//
// Behaviours:
//   default            echo every message (text as text, binary as binary); ws.send() never waits.
//   --sleep-ms N       slow consumer, no reply: each connection handles its messages one after the other, each
//                      taking N ms of timer (a promise chain: the message stays referenced until its turn ends).
//   --sleep-ms N --busy  the same, but each message busy-waits N ms on the event loop (a blocking handler).
//
// `ws` is loaded from tests/interop/node_modules (installed by tests/interop/setup.sh).
// Prints `listening on ws://HOST:PORT/` when ready; SIGTERM/SIGINT stop it.
//
//   node bench/servers/node_ws_abuse.mjs [--host H] [--port N] [--max-payload BYTES] [--sleep-ms MS [--busy]]
import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', '..', 'tests', 'interop', 'node_modules', 'noop.js'));
const { WebSocketServer } = require('ws');

let host = '127.0.0.1';
let port = 0;
let maxPayload = null;
let sleepMs = 0;
let busy = false;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 1) {
  if (argv[i] === '--host') host = argv[++i];
  else if (argv[i] === '--port') port = Number(argv[++i]);
  else if (argv[i] === '--max-payload') maxPayload = Number(argv[++i]);
  else if (argv[i] === '--sleep-ms') sleepMs = Number(argv[++i]);
  else if (argv[i] === '--busy') busy = true;
  else {
    console.error('usage: node_ws_abuse.mjs [--host H] [--port N] [--max-payload BYTES] [--sleep-ms MS [--busy]]');
    process.exit(2);
  }
}

const options = { host, port, backlog: 1024 };
if (maxPayload !== null) options.maxPayload = maxPayload;
const wss = new WebSocketServer(options);

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function spin(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // a handler that blocks the event loop
  }
}

wss.on('connection', (ws) => {
  ws.on('error', () => {});
  if (sleepMs <= 0) {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    return;
  }
  let handled = 0;
  if (busy) {
    ws.on('message', (data) => {
      spin(sleepMs);
      handled += data.length;
    });
    return;
  }
  let chain = Promise.resolve();
  ws.on('message', (data) => {
    chain = chain
      .then(() => pause(sleepMs))
      .then(() => {
        handled += data.length;
      });
  });
});
wss.on('listening', () => {
  process.stdout.write(`listening on ws://${host}:${wss.address().port}/\n`);
});
const stop = () => {
  for (const client of wss.clients) client.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
