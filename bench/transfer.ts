// npm run bench:transfer — what moving a checkpoint archive between agents costs, next to the
// floor of a file copy on the same disk. Gantry's side is what a checkpoint migration does with
// the archive once the dump is written: the source hashes it (published as checkpointSHA256,
// while the process is frozen), then streams it encrypted for the target Host's key over HTTP on
// loopback, and the target decrypts, hashes and writes it. BENCH_MB sets the archive's size
// (default 1024), BENCH_RUNS the runs (default 3); the archive is random bytes (incompressible,
// like a real heap), read from the page cache as a fresh dump is. Needs no cluster.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  fetchCheckpoint,
  fileSha256,
  serveTransfers,
  TransferKey,
  transferContext,
} from '../src/agent/transfer.js';

const mb = Number(process.env.BENCH_MB ?? 1024);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-bench-transfer-'));
const archive = path.join(dir, 'archive.tar');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

try {
  const chunk = crypto.randomBytes(4 << 20);
  const out = fs.openSync(archive, 'w');
  for (let written = 0; written < mb << 20; written += chunk.length) fs.writeSync(out, chunk);
  fs.closeSync(out);
  const bytes = fs.statSync(archive).size;

  const source = TransferKey.loadOrCreate(path.join(dir, 'source-key.pem'));
  const target = TransferKey.loadOrCreate(path.join(dir, 'target-key.pem'));
  const context = transferContext('bench', 'source', 'target');
  const server = await serveTransfers(
    {
      grant: async () => ({ token: 't', archive, recipientKey: target.publicKey, context }),
    },
    source,
    { host: '127.0.0.1', port: 0 },
  );
  const rows: Record<string, number[]> = { copy: [], hash: [], transfer: [] };
  try {
    for (let i = 0; i < runs; i++) {
      const copy = path.join(dir, 'copy.tar');
      rows.copy!.push(await timed(() => fs.promises.copyFile(archive, copy)));
      fs.rmSync(copy);
      let sha256 = '';
      rows.hash!.push(await timed(async () => (sha256 = await fileSha256(archive))));
      const dest = path.join(dir, 'received.tar');
      rows.transfer!.push(
        await timed(() =>
          fetchCheckpoint(
            {
              endpoint: `http://127.0.0.1:${server.address.port}`,
              migrationUid: 'bench',
              token: 't',
              senderKey: source.publicKey,
              context,
              sha256,
              maxBytes: bytes,
            },
            target,
            dest,
          ),
        ),
      );
      fs.rmSync(dest);
    }
  } finally {
    await server.close();
  }
  const line = (what: string, xs: number[]) =>
    console.log(
      `| ${what} | ${median(xs).toFixed(2)} s | ${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)} s | ${Math.round(bytes / 2 ** 20 / median(xs))} MiB/s |`,
    );
  console.log(
    `${mb} MiB archive, ${runs} runs, ${os.availableParallelism()} CPUs (${os.cpus()[0]?.model ?? '?'}), node ${process.version}`,
  );
  console.log('| step | median | min-max | throughput |\n|---|---|---|---|');
  line('file copy (the floor)', rows.copy!);
  line('source: SHA-256 of the archive (while frozen)', rows.hash!);
  line('transfer: encrypt, HTTP on loopback, decrypt, hash, write', rows.transfer!);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
