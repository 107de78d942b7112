#!/usr/bin/env node
'use strict';
// A TCP proxy that adds network latency for the remote-mount benchmark
// (bench/run.sh, section 11): this kernel has no tc netem. It owns the
// delay and the byte counts, nothing else (no HTTP knowledge, no shaping).
//   node bench/delay-proxy.js LISTEN_PORT TARGET_HOST:TARGET_PORT DELAY_MS STATS_FILE
// Listens on 127.0.0.1:LISTEN_PORT; every connection is relayed to
// TARGET_HOST:TARGET_PORT. Each chunk read from either side is stamped on
// arrival and written to the other side DELAY_MS later, in order (one FIFO
// per direction, one timer for its head), so a request/response round trip
// costs 2 x DELAY_MS more and throughput is not limited by the delay. Memory
// stays bounded: a side is paused while more than QUEUE_BYTES
// (DELAY_PROXY_QUEUE_MB, default 8 MiB) wait for the other, counting what
// the other's socket has not yet taken; like a TCP window this caps one
// connection's throughput in one direction at QUEUE_BYTES / DELAY_MS
// (8 MiB / 25 ms = 335 MB/s). The TCP handshake is not delayed.
// Counts the bytes passed in each direction (up: client -> server, down:
// server -> client, counted when released) and writes the totals as JSON
//   {"up":N,"down":N,"connections":N,"open":N,"delayMs":N,"queueBytes":N}
// to STATS_FILE atomically (temp file + rename) when it starts, whenever a
// connection closes, on SIGUSR1, every 200 ms while bytes flow, and on exit
// (SIGTERM, SIGINT). Prints "ready" on stdout once listening.

const fs = require('fs');
const net = require('net');

const [portArg, target, delayArg, statsFile] = process.argv.slice(2);
const tm = /^(.+):(\d+)$/.exec(target || '');
const delayMs = Number(delayArg);
if (!portArg || !tm || !Number.isFinite(delayMs) || delayMs < 0 || !statsFile) {
  process.stderr.write('usage: delay-proxy.js LISTEN_PORT TARGET_HOST:TARGET_PORT DELAY_MS STATS_FILE\n');
  process.exit(2);
}
const targetHost = tm[1];
const targetPort = Number(tm[2]);
const QUEUE_BYTES = Math.round(Number(process.env.DELAY_PROXY_QUEUE_MB || 8) * 2 ** 20);

const stats = { up: 0, down: 0, connections: 0, open: 0, delayMs, queueBytes: QUEUE_BYTES };
let dirty = false;
function writeStats() {
  const tmp = `${statsFile}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(stats) + '\n');
  fs.renameSync(tmp, statsFile);
  dirty = false;
}
setInterval(() => { if (dirty) writeStats(); }, 200).unref();
process.on('SIGUSR1', writeStats);
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    writeStats();
    process.exit(0);
  });
}

const EOF = null;

/**
 * One direction: chunks read from `src` are written to `dst` DELAY_MS after
 * they arrived. `key` names the counter ('up' or 'down').
 */
function relay(src, dst, key) {
  const queue = []; // { due, chunk } in arrival (= due) order; chunk EOF ends dst
  let head = 0;
  let queued = 0;
  let timer = null;
  let paused = false;

  const backlog = () => queued + dst.writableLength;
  const maybeResume = () => {
    if (paused && backlog() <= QUEUE_BYTES && !src.destroyed) {
      paused = false;
      src.resume();
    }
  };
  const release = () => {
    timer = null;
    const now = performance.now();
    while (head < queue.length && queue[head].due <= now) {
      const { chunk } = queue[head];
      queue[head++] = undefined;
      if (chunk === EOF) {
        if (!dst.destroyed) dst.end();
        continue;
      }
      queued -= chunk.length;
      if (dst.destroyed) continue;
      stats[key] += chunk.length;
      dirty = true;
      dst.write(chunk);
    }
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
    } else if (head > 4096) {
      queue.splice(0, head);
      head = 0;
    }
    schedule();
    maybeResume();
  };
  const schedule = () => {
    if (timer || head >= queue.length) return;
    timer = setTimeout(release, Math.max(0, queue[head].due - performance.now()));
  };

  src.on('data', (chunk) => {
    queue.push({ due: performance.now() + delayMs, chunk });
    queued += chunk.length;
    schedule();
    if (!paused && backlog() > QUEUE_BYTES) {
      paused = true;
      src.pause();
    }
  });
  src.on('end', () => {
    queue.push({ due: performance.now() + delayMs, chunk: EOF });
    schedule();
  });
  dst.on('drain', maybeResume);
  return () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
}

const server = net.createServer({ allowHalfOpen: true }, (client) => {
  const upstream = net.connect({ host: targetHost, port: targetPort, allowHalfOpen: true });
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  stats.connections++;
  stats.open++;
  dirty = true;
  const stopUp = relay(client, upstream, 'up');
  const stopDown = relay(upstream, client, 'down');
  let closed = 0;
  const onClose = () => {
    // a reset or error on one side ends the other at once; a clean end is
    // relayed in order through the queue (half-close)
    if (++closed === 2) {
      stopUp();
      stopDown();
      stats.open--;
      writeStats();
    }
  };
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.on('close', (hadError) => { if (hadError) upstream.destroy(); onClose(); });
  upstream.on('close', (hadError) => { if (hadError) client.destroy(); onClose(); });
  // both ends finished writing and reading: close
  for (const s of [client, upstream]) {
    s.on('finish', () => { if (s.readableEnded) s.destroy(); });
    s.on('end', () => { if (s.writableFinished) s.destroy(); });
  }
});
server.on('error', (e) => {
  process.stderr.write(`delay-proxy: ${e.message}\n`);
  process.exit(1);
});
server.listen(Number(portArg), '127.0.0.1', () => {
  writeStats();
  process.stdout.write('ready\n');
});
