// Echo server on Node's `ws` package (issue 6), a peer for bench/run_all.py and bench_idle.py.
//
// perMessageDeflate off (--deflate: on, ws's defaults), no keepalive pings (ws answers pings itself), text back as text, binary as binary.
// `ws` is loaded from tests/interop/node_modules (installed by tests/interop/setup.sh) or from NODE_PATH.
// Prints `listening on ws://HOST:PORT/` when ready; SIGTERM/SIGINT stop it.
//
//   node bench/servers/node_ws_echo.mjs [--host 127.0.0.1] [--port 0]
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', '..', 'tests', 'interop', 'node_modules', 'noop.js'));
const { WebSocketServer } = require('ws');

let host = '127.0.0.1';
let port = 0;
let deflate = false; // --deflate: perMessageDeflate on, with ws's defaults (a context per connection)
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 1) {
  if (argv[i] === '--host') host = argv[++i];
  else if (argv[i] === '--port') port = Number(argv[++i]);
  else if (argv[i] === '--deflate') deflate = true;
  else {
    console.error('usage: node_ws_echo.mjs [--host H] [--port N] [--deflate]');
    process.exit(2);
  }
}

const wss = new WebSocketServer({ host, port, backlog: 1024, perMessageDeflate: deflate, maxPayload: 16 * 1024 * 1024 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
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
