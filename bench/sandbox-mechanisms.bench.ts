/**
 * Processes or worker threads for sandboxed tasks? The two mechanisms Node
 * supports, compared on what recycling costs: 4 slots run 20,000 no-op round
 * trips; each executor is replaced after `--per-child` tasks, its successor
 * started at half life (as the sandbox pool does). `thread`: a worker thread
 * (postMessage); `process`: a spawned Node process (IPC). docs/jobs.md, Workers,
 * says what was chosen and why.
 *
 *   npx tsx bench/sandbox-mechanisms.bench.ts [--per-child=100] [--tasks=20000]
 */
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { emit, printTable } from './lib/report.js';

const arg = (name: string, def: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def);
const PER_CHILD = arg('per-child', 100);
const TASKS = arg('tasks', 20_000);
const SLOTS = 4;
const ECHO = `
const { parentPort } = require('node:worker_threads');
if (parentPort) parentPort.on('message', (m) => parentPort.postMessage(m));
else process.on('message', (m) => process.send(m));
`;

interface Executor {
  send(m: number): void;
  end(): void;
  waiter: ((m: unknown) => void) | undefined;
  tasks: number;
}

function start(mechanism: 'thread' | 'process'): Executor {
  const ex: Executor = { send: () => undefined, end: () => undefined, waiter: undefined, tasks: 0 };
  const onMessage = (m: unknown) => {
    const w = ex.waiter;
    ex.waiter = undefined;
    w?.(m);
  };
  if (mechanism === 'thread') {
    const w = new Worker(ECHO, { eval: true });
    w.on('message', onMessage);
    ex.send = (m) => w.postMessage(m);
    ex.end = () => void w.terminate();
  } else {
    const c = spawn(process.execPath, ['-e', ECHO], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    c.on('message', onMessage);
    ex.send = (m) => c.send(m);
    ex.end = () => c.disconnect();
  }
  return ex;
}

async function run(mechanism: 'thread' | 'process'): Promise<void> {
  let done = 0;
  const slot = async () => {
    let cur = start(mechanism);
    let spare: Executor | undefined;
    while (done < TASKS) {
      done++;
      await new Promise((resolve) => {
        cur.waiter = resolve;
        cur.send(done);
      });
      cur.tasks++;
      if (cur.tasks === Math.ceil(PER_CHILD / 2)) spare = start(mechanism);
      if (cur.tasks >= PER_CHILD) {
        cur.end();
        cur = spare ?? start(mechanism);
        spare = undefined;
      }
    }
    cur.end();
    spare?.end();
  };
  const t = performance.now();
  await Promise.all(Array.from({ length: SLOTS }, slot));
  emit({
    bench: 'sandbox-mechanisms',
    case: `per_child_${PER_CHILD}`,
    backend: mechanism,
    metric: 'noop_tasks_per_s',
    value: TASKS / ((performance.now() - t) / 1000),
    unit: 'tasks/s',
    tasks: TASKS,
    slots: SLOTS,
  });
}

await run('thread');
await run('process');
printTable();
