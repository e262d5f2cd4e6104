// Node's `ws` package as a real client of our server. Driven by test_node_ws.py:
//
//     node ws_client.mjs SCENARIO URL [ARG]
//
// runs one scenario against the server at URL and prints exactly one line of JSON on stdout: the facts the Python
// test asserts on (what came back, close codes and reasons, errors). Every scenario has a deadline; a scenario
// that does not finish in time prints {"error": "..."} and exits 1 instead of hanging.

import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import WebSocket from "ws";

const [scenario, url, arg] = process.argv.slice(2);
const DEADLINE_MS = Number(process.env.INTEROP_DEADLINE_MS || 40000);

function sha256(data) {
  return createHash("sha256").update(data).digest("hex");
}

function done(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

function fail(message) {
  process.stdout.write(`${JSON.stringify({ error: message })}\n`, () => process.exit(1));
}

setTimeout(() => fail(`scenario ${scenario} did not finish within ${DEADLINE_MS} ms`), DEADLINE_MS).unref();

// A connected client whose events are turned into promises, in order of arrival.
class Client {
  constructor(ws) {
    this.ws = ws;
    this.inbox = [];
    this.waiters = [];
    this.errors = [];
    this.pongs = [];
    this.pings = 0;
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => resolve({ code, reason: reason.toString("utf8") }));
    });
    ws.on("message", (data, isBinary) => {
      const message = { data: Buffer.from(data), isBinary };
      const waiter = this.waiters.shift();
      if (waiter) waiter(message);
      else this.inbox.push(message);
    });
    ws.on("error", (err) => this.errors.push(String(err.message || err)));
    ws.on("pong", (data) => this.pongs.push(Buffer.from(data)));
    ws.on("ping", () => {
      this.pings += 1;
    });
  }

  static open(target, options = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(target, options);
      const client = new Client(ws);
      ws.once("open", () => resolve(client));
      ws.once("error", reject);
    });
  }

  next() {
    if (this.inbox.length) return Promise.resolve(this.inbox.shift());
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  send(data, options = {}) {
    return new Promise((resolve, reject) => this.ws.send(data, options, (err) => (err ? reject(err) : resolve())));
  }

  async roundTrip(data, options = {}) {
    await this.send(data, options);
    return this.next();
  }

  async close(code, reason) {
    this.ws.close(code, reason);
    return this.closed;
  }
}

function describe(message) {
  return {
    binary: message.isBinary,
    length: message.data.length,
    sha256: sha256(message.data),
    text: message.isBinary ? null : message.data.toString("utf8"),
  };
}

const scenarios = {
  // permessage-deflate (ws offers it by default): text and binary, small and 1 MiB, compressible and not; what the
  // server answered, and what came back.
  async deflate() {
    const client = await Client.open(url, { perMessageDeflate: { threshold: 0 }, maxPayload: 64 * 1024 * 1024 });
    const json = JSON.stringify({ type: "chat", room: "lobby", user: "node", text: "hello ".repeat(20) });
    const compressible = Buffer.from(json.repeat(Math.ceil((1024 * 1024) / json.length))).subarray(0, 1024 * 1024);
    const payloads = [
      ["text small", json, false],
      ["binary small", Buffer.from(json), true],
      ["text 1 MiB compressible", compressible.toString("utf8"), false],
      ["binary 1 MiB compressible", compressible, true],
      ["binary 1 MiB incompressible", randomBytes(1024 * 1024), true],
      ["text 1 MiB incompressible", randomBytes(768 * 1024).toString("base64"), false],
    ];
    const results = [];
    for (const [name, data, binary] of payloads) {
      const sent = Buffer.from(data);
      const back = describe(await client.roundTrip(data, { binary, compress: true }));
      delete back.text;
      results.push({ name, sent: { binary, length: sent.length, sha256: sha256(sent) }, received: back });
    }
    const close = await client.close(1000, "");
    const agreed = client.ws._extensions["permessage-deflate"]; // ws's PerMessageDeflate: what it accepted
    return { extensions: client.ws.extensions, params: agreed ? agreed.params : null, results, close, errors: client.errors };
  },

  // Text messages of several shapes, each echoed as text.
  async text() {
    const client = await Client.open(url);
    const sent = ["hello", "", "héllo wörld ✓ 🎉", "x".repeat(125), "y".repeat(126), "z".repeat(65536), "a\u0000b"];
    const received = [];
    for (const text of sent) received.push(describe(await client.roundTrip(text)));
    const close = await client.close(1000, "done");
    return { sent, received, close, errors: client.errors, extensions: client.ws.extensions, protocol: client.ws.protocol };
  },

  // Binary messages, all 256 byte values included, each echoed as binary.
  async binary() {
    const client = await Client.open(url);
    const payloads = [
      Buffer.alloc(0),
      Buffer.from([0]),
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      Buffer.from([0xff, 0xfe, 0xfd]), // not UTF-8: fine for binary
      randomBytes(70000),
    ];
    const received = [];
    for (const data of payloads) received.push(describe(await client.roundTrip(data, { binary: true })));
    const close = await client.close(1000, "");
    return {
      sent: payloads.map((data) => ({ length: data.length, sha256: sha256(data) })),
      received,
      close,
      errors: client.errors,
    };
  },

  // Fragmented messages (continuation frames), one with a UTF-8 character split across fragments and a ping
  // between fragments; each comes back as one message.
  async fragments() {
    const client = await Client.open(url);
    const ws = client.ws;
    const sendAll = (parts) =>
      Promise.all(parts.map(([data, options]) => new Promise((resolve) => ws.send(data, options, resolve))));
    await sendAll([
      [Buffer.from([0x61, 0xe2, 0x9c]), { binary: false, fin: false }], // "a" + first two bytes of U+2713
      [Buffer.from([0x93, 0x62]), { binary: false, fin: true }], // last byte of U+2713 + "b"
    ]);
    const text = describe(await client.next());
    const pong = new Promise((resolve) => ws.once("pong", resolve));
    ws.send(Buffer.from([1, 2]), { binary: true, fin: false });
    ws.ping(Buffer.from("mid"));
    await sendAll([
      [Buffer.from([3]), { binary: true, fin: false }],
      [Buffer.from([4, 5]), { binary: true, fin: true }],
    ]);
    const pongPayload = Buffer.from(await pong).toString("utf8");
    const binary = await client.next();
    const close = await client.close(1000, "");
    return {
      text,
      binary: { binary: binary.isBinary, hex: binary.data.toString("hex") },
      pong: pongPayload,
      close,
      errors: client.errors,
    };
  },

  // The opening handshake: path, query and headers reach on_connect; on_upgrade's Reject is an HTTP error
  // before the upgrade; on_connect's Reject is a close after it. The test's handler decides by path.
  async handshake() {
    const result = {};
    const client = await Client.open(`${url}chat/room?user=n%C3%B6de&x=1`, {
      headers: { Authorization: "Bearer token-1", "X-Interop": "node ws" },
    });
    result.accepted = describe(await client.roundTrip("hello"));
    result.accepted_close = await client.close(1000, "");

    result.upgrade_rejected = await new Promise((resolve) => {
      const ws = new WebSocket(`${url}forbidden`);
      ws.on("unexpected-response", (request, response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk) => {
          body += chunk;
        });
        response.on("end", () => {
          resolve({ status: response.statusCode, body });
          request.destroy();
        });
      });
      ws.on("open", () => resolve({ opened: true }));
      ws.on("error", (err) => resolve({ error: String(err.message || err) }));
    });

    const rejected = await Client.open(`${url}refused`);
    result.connect_rejected = { ...(await rejected.closed), errors: rejected.errors };
    return result;
  },

  // wss:// with the test's CA (ARG: its PEM file): text, 1 MiB and 4 MiB binary, a ping, then a clean close.
  async tls() {
    const client = await Client.open(url, { ca: readFileSync(arg) });
    const text = describe(await client.roundTrip("secure ❄"));
    const sizes = [1024 * 1024, 4 * 1024 * 1024];
    const binary = [];
    for (const size of sizes) {
      const data = randomBytes(size);
      const back = await client.roundTrip(data, { binary: true });
      binary.push({ length: back.data.length, same: back.isBinary && back.data.equals(data) });
    }
    const pong = new Promise((resolve) => client.ws.once("pong", resolve));
    client.ws.ping(Buffer.from("tls ping"));
    const pongPayload = Buffer.from(await pong).toString("utf8");
    const close = await client.close(1000, "tls done");
    return { text, binary, pong: pongPayload, close, errors: client.errors };
  },

  // Large messages: 1 MiB of UTF-8 text (multi-byte characters), 1 MiB binary, 16 MiB - 1 and 16 MiB binary
  // (our default limit is 16 MiB inclusive), then 16 MiB + 1, which the server must refuse with 1009.
  // The client accepts up to 64 MiB.
  async large() {
    const client = await Client.open(url, { maxPayload: 64 * 1024 * 1024 });
    const unit = "snow ❄ é 🎉 "; // 1- to 4-byte UTF-8 characters
    const text = unit.repeat(Math.ceil((1024 * 1024) / Buffer.byteLength(unit)));
    const cases = [
      { name: "text 1 MiB", data: text, binary: false },
      { name: "binary 1 MiB", data: randomBytes(1024 * 1024), binary: true },
      { name: "binary 16 MiB - 1", data: randomBytes(16 * 1024 * 1024 - 1), binary: true },
      { name: "binary 16 MiB", data: randomBytes(16 * 1024 * 1024), binary: true },
    ];
    const results = [];
    for (const c of cases) {
      const bytes = Buffer.from(c.data);
      const started = Date.now();
      const message = await client.roundTrip(c.data, { binary: c.binary });
      results.push({
        name: c.name,
        sent_length: bytes.length,
        sent_sha256: sha256(bytes),
        received: { binary: message.isBinary, length: message.data.length, sha256: sha256(message.data) },
        ms: Date.now() - started,
      });
    }
    client.ws.send(randomBytes(16 * 1024 * 1024 + 1), { binary: true }, () => {});
    const overLimit = await client.closed;
    return { results, over_limit: overLimit, errors: client.errors };
  },

  // ws.ping(payload) gets a pong with the same payload; several pings, in order, text still flows between them.
  async ping() {
    const client = await Client.open(url);
    const payloads = [Buffer.from("ping-1"), Buffer.alloc(0), Buffer.from(Array.from({ length: 125 }, (_, i) => i))];
    for (const payload of payloads) {
      const pong = new Promise((resolve) => client.ws.once("pong", resolve));
      client.ws.ping(payload);
      await pong;
    }
    const echoed = describe(await client.roundTrip("after pings"));
    const close = await client.close(1000, "");
    return {
      sent: payloads.map((p) => p.toString("hex")),
      pongs: client.pongs.map((p) => p.toString("hex")),
      echoed,
      close,
      errors: client.errors,
    };
  },

  // The server's heartbeat pings: ws answers them by itself, so the connection stays open past several intervals.
  async heartbeat() {
    const client = await Client.open(url);
    const waitMs = Number(arg || 1500);
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    const echoed = describe(await client.roundTrip("still here"));
    const close = await client.close(1000, "");
    return { pings: client.pings, echoed, close, errors: client.errors };
  },

  // The client closes with 4000 "bye": the server echoes the code (and our close event reports it). Then, each
  // on its own connection: a Close without a status code, and a TCP drop with no Close at all (terminate).
  async client_close() {
    const client = await Client.open(url);
    const echoed = describe(await client.roundTrip("before close"));
    const close = await client.close(4000, "bye");
    const bare = await Client.open(url);
    const bareClose = await bare.close();
    const dropped = await Client.open(url);
    dropped.ws.terminate();
    const droppedClose = await dropped.closed;
    const errors = [...client.errors, ...bare.errors, ...dropped.errors];
    return { echoed, close, bare_close: bareClose, dropped_close: droppedClose, errors };
  },

  // The server closes: the test's handler answers the text "close me" with conn.close(4001, "server bye").
  async server_close() {
    const client = await Client.open(url);
    await client.send("close me");
    const close = await client.closed;
    return { close, errors: client.errors, ready_state: client.ws.readyState };
  },

  // Protocol violations sent from node, each on its own connection; node must see the server's close code.
  async violations() {
    const results = {};

    // Text that is not UTF-8 (ws does not validate what it sends): 1007.
    {
      const client = await Client.open(url);
      await client.send(Buffer.from([0x68, 0x69, 0xff, 0xfe]), { binary: false });
      results.invalid_utf8 = { ...(await client.closed), errors: client.errors };
    }

    // A masked frame with a reserved opcode (0x3), written on the raw socket under ws: 1002.
    {
      const client = await Client.open(url);
      client.ws._socket.write(Buffer.from([0x83, 0x80, 0x00, 0x00, 0x00, 0x00]));
      results.reserved_opcode = { ...(await client.closed), errors: client.errors };
    }

    // A masked frame with RSV1 set and no extension negotiated (ws told not to offer it): 1002.
    {
      const client = await Client.open(url, { perMessageDeflate: false });
      client.ws._socket.write(Buffer.from([0xc1, 0x80, 0x00, 0x00, 0x00, 0x00]));
      results.rsv1 = { ...(await client.closed), errors: client.errors };
    }

    // permessage-deflate negotiated (ws's default offer), RSV1 on a continuation frame (RFC 7692 6.1): 1002.
    {
      const client = await Client.open(url);
      client.ws._socket.write(Buffer.from([0x41, 0x80, 0, 0, 0, 0, 0xc0, 0x80, 0, 0, 0, 0]));
      results.rsv1_continuation = { ...(await client.closed), errors: client.errors };
    }

    // An unmasked client frame: 1002.
    {
      const client = await Client.open(url);
      client.ws._socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69]));
      results.unmasked = { ...(await client.closed), errors: client.errors };
    }

    // A message one byte over the limit given as ARG: 1009 from its header.
    {
      const limit = Number(arg);
      const client = await Client.open(url);
      client.ws.send(randomBytes(limit + 1), { binary: true }, () => {});
      results.too_big = { ...(await client.closed), errors: client.errors, limit };
    }

    return results;
  },

  // N concurrent connections (ARG, default 200), each echoing several text and binary messages in order.
  async concurrent() {
    const count = Number(arg || 200);
    const perConnection = 5;
    const opened = await Promise.allSettled(Array.from({ length: count }, () => Client.open(url)));
    const openErrors = opened.filter((r) => r.status === "rejected").map((r) => String(r.reason));
    const clients = opened.filter((r) => r.status === "fulfilled").map((r) => r.value);
    let matched = 0;
    const mismatches = [];
    await Promise.all(
      clients.map(async (client, i) => {
        // Send them all first (pipelined), then read them back: order must be kept per connection.
        const sent = [];
        for (let j = 0; j < perConnection; j++) {
          const binary = j % 2 === 1;
          const body = `conn ${i} message ${j} ${"∑".repeat(j * 100)}`;
          const data = binary ? Buffer.from(body) : body;
          sent.push({ body, binary });
          client.ws.send(data, { binary });
        }
        for (const expected of sent) {
          const message = await client.next();
          if (message.isBinary === expected.binary && message.data.toString("utf8") === expected.body) matched += 1;
          else if (mismatches.length < 5) mismatches.push({ conn: i, expected, got: describe(message) });
        }
      }),
    );
    const closes = await Promise.all(clients.map((client) => client.close(1000, "")));
    const closeCodes = {};
    for (const close of closes) closeCodes[close.code] = (closeCodes[close.code] || 0) + 1;
    return {
      opened: clients.length,
      open_errors: openErrors.slice(0, 5),
      matched,
      expected: count * perConnection,
      mismatches,
      close_codes: closeCodes,
      errors: clients.flatMap((client) => client.errors).slice(0, 5),
    };
  },

  // ChatApp's line protocol from two node clients: rooms, /say (others only), /all (everyone), /rooms, /leave.
  async chat() {
    const a = await Client.open(url);
    const b = await Client.open(url);
    const log = [];
    const text = async (client) => (await client.next()).data.toString("utf8");
    await a.send("/join lobby");
    log.push(["a", await text(a)]);
    await b.send("/join lobby");
    log.push(["b", await text(b)]);
    await a.send("/say lobby hi from a");
    log.push(["b", await text(b)]);
    await b.send("/all lobby hi all from b");
    log.push(["a", await text(a)]);
    log.push(["b", await text(b)]);
    await a.send("/join zeta");
    log.push(["a", await text(a)]);
    await a.send("/rooms");
    log.push(["a", await text(a)]);
    await a.send("/leave lobby");
    log.push(["a", await text(a)]);
    await b.send("/say lobby nobody hears this");
    await b.send("plain text is echoed");
    log.push(["b", await text(b)]);
    // a must have received nothing else: a round trip proves nothing was queued before its answer.
    await a.send("/rooms");
    log.push(["a", await text(a)]);
    await a.close(1000, "");
    await b.close(1000, "");
    return { log, errors: [...a.errors, ...b.errors] };
  },
};

const run = scenarios[scenario];
if (!run) fail(`unknown scenario ${scenario}; known: ${Object.keys(scenarios).join(", ")}`);
else
  run().then(done, (err) => fail(`scenario ${scenario} failed: ${err && err.stack ? err.stack : err}`));
