// BullMQ's side of `python -m bench jobs` (bench/_jobs_bullmq.py installs bullmq and ioredis in
// ~/.cache/redline/bench-node and runs this with NODE_PATH pointing there):
//   node bullmq_noop.cjs enqueue N        add N no-op jobs, one `queue.add` per call; prints the
//                                         seconds it took
//   node bullmq_noop.cjs work C           one Worker at concurrency C until SIGTERM
//   node bullmq_noop.cjs latency N RATE   add N latency jobs at RATE a second (each carries the
//                                         time it was sent; the worker RPUSHes its start delay
//                                         in seconds onto bench:latency)
// Completed and failed jobs are removed (removeOnComplete/removeOnFail), BullMQ at its fastest
// and like redline, which keeps nothing of a completed job that keeps no result.
const { Queue, Worker } = require("bullmq");
const IORedis = require("ioredis");

const url = process.env.REDIS_URL || "redis://127.0.0.1:6379/0";
const QUEUE = "bench";
const now = () => (performance.timeOrigin + performance.now()) / 1000; // unix seconds, µs

function connection() {
  return new IORedis(url, { maxRetriesPerRequest: null });
}

async function enqueue(n) {
  const queue = new Queue(QUEUE, { connection: connection() });
  const options = { removeOnComplete: true, removeOnFail: true };
  const started = now();
  for (let i = 0; i < n; i++) await queue.add("noop", {}, options);
  console.log(now() - started);
  await queue.close();
  process.exit(0); // the connection given to the Queue is ours to end: end it with the process
}

async function latency(n, rate) {
  const queue = new Queue(QUEUE, { connection: connection() });
  const options = { removeOnComplete: true, removeOnFail: true };
  const start = now();
  for (let i = 0; i < n; i++) {
    const wait = start + i / rate - now();
    if (wait > 0) await new Promise((done) => setTimeout(done, wait * 1000));
    await queue.add("latency", { sent: now() }, options);
  }
  await queue.close();
  process.exit(0);
}

function work(concurrency) {
  const recorder = connection();
  const worker = new Worker(
    QUEUE,
    async (job) => {
      if (job.name === "latency") await recorder.rpush("bench:latency", now() - job.data.sent);
    },
    { connection: connection(), concurrency },
  );
  const stop = async () => {
    await worker.close();
    recorder.disconnect();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

const [mode, a, b] = process.argv.slice(2);
if (mode === "enqueue") enqueue(Number(a));
else if (mode === "latency") latency(Number(a), Number(b));
else if (mode === "work") work(Number(a));
else {
  console.error("usage: bullmq_noop.cjs enqueue N | work C | latency N RATE");
  process.exit(2);
}
