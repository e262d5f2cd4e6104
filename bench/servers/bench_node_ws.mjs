// The bench protocol (issue 4) on Node's `ws` package, for bench/bench_broadcast.py.
//
// Every connection joins the room (the server's `clients` set); a text message whose first character is 'B' is
// sent to every member, the sender included, by a loop calling client.send on each open client; any other
// message is echoed with its type. perMessageDeflate off; no keepalive pings (ws answers pings by itself).
// Prints `listening on ws://HOST:PORT/` when ready; SIGTERM/SIGINT stop it.
//
//   node bench/servers/bench_node_ws.mjs [--host 127.0.0.1] [--port 0]
//
// `ws` is loaded from tests/interop/node_modules (installed by `make test`), or from WS_MODULE if set.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const wsPath = process.env.WS_MODULE || path.join(here, '..', '..', 'tests', 'interop', 'node_modules', 'ws');
const require = createRequire(import.meta.url);
const { WebSocketServer, WebSocket } = require(wsPath);

let host = '127.0.0.1';
let port = 0;
let deflate = false; // --deflate: perMessageDeflate on with ws's defaults (a context per connection, 1 KiB threshold)
for (let i = 2; i < process.argv.length; i += 2) {
  if (process.argv[i] === '--host') host = process.argv[i + 1];
  else if (process.argv[i] === '--port') port = Number(process.argv[i + 1]);
  else if (process.argv[i] === '--deflate') {
    deflate = true;
    i -= 1;
  } else {
    console.error(`usage: node bench_node_ws.mjs [--host H] [--port P] [--deflate]; unknown ${process.argv[i]}`);
    process.exit(2);
  }
}

const wss = new WebSocketServer({ host, port, backlog: 1024, perMessageDeflate: deflate, clientTracking: true });

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.length > 0 && data[0] === 0x42) {
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
      }
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  const addr = wss.address();
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  process.stdout.write(`listening on ws://${shown}:${addr.port}/\n`);
});

wss.on('error', (err) => {
  console.error(`bench_node_ws: ${err.message}`);
  process.exit(1);
});

function stop() {
  for (const client of wss.clients) client.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
