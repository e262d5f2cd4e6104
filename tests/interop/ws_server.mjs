// Node's `ws` package as a real server for our client. Driven by test_client_interop.py:
//
//     node ws_server.mjs
//
// listens on 127.0.0.1 (a free port, permessage-deflate offered to whoever asks), prints {"port": N} on stdout,
// echoes every message as it came (text as text, binary as binary) with a "node:" prefix on text, and answers the
// text "close me" with close 4000 "node says bye". It exits when stdin closes (the test's end), or at its deadline.

import { WebSocketServer } from "ws";

const DEADLINE_MS = Number(process.env.INTEROP_DEADLINE_MS || 40000);
setTimeout(() => process.exit(1), DEADLINE_MS).unref();

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: true }, () => {
  process.stdout.write(`${JSON.stringify({ port: wss.address().port })}\n`);
});
wss.on("connection", (ws, request) => {
  ws.on("message", (data, isBinary) => {
    if (!isBinary && data.toString() === "close me") ws.close(4000, "node says bye");
    else if (isBinary) ws.send(data, { binary: true });
    else ws.send(`node:${data.toString()}|${request.headers["sec-websocket-extensions"] ? "deflate" : "plain"}`);
  });
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
