#!/usr/bin/env node
/**
 * The `omnivibe` command: the composition root for every process.
 * Run `omnivibe --help` or `omnivibe <command> --help`.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { type Config, ConfigError, loadConfig } from '../config/config.js';
import { openDatabase } from '../db/database.js';
import { migrateToLatest, migrationStatus } from '../db/migrator.js';
import { ROLES, type Role } from '../db/types.js';
import { serve } from './api.js';
import { startWorker } from './worker.js';
import { registerWorkerCommands } from './worker-commands.js';
import { workerDefaults } from './worker-flags.js';
import { seedDemo } from './seed-demo.js';
import { runMediaDemo } from '../media/demo.js';
import { bootstrapAdminKey, createLogger, createSystem, type System } from './system.js';

/** Variables that place a process's data; `omnivibe demo` sets its own. */
const DATA_LOCATION_VARS = [
  'DATABASE_URL',
  'REDIS_URL',
  'CACHE_REDIS_URL',
  'JOBS_DB_FILE',
  'MEDIA_DIR',
  'MEDIA_SCRATCH_DIR',
  'MEDIA_STORAGE_URL',
];

/** The configuration, read when a command runs (never while commands are registered): exit 2 on a bad value. */
function config(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** Runs `fn` with a System, then closes it. */
async function withSystem<T>(fn: (s: System) => Promise<T>, cfg: Config = config()): Promise<T> {
  const system = await createSystem(
    cfg,
    createLogger({ ...cfg, logLevel: cfg.logLevel === 'info' ? 'warn' : cfg.logLevel }),
  );
  try {
    return await fn(system);
  } finally {
    await system.close();
  }
}

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
};

/** Starts the API until SIGINT/SIGTERM; a second signal exits at once. */
async function runServer(mode: 'start' | 'serve'): Promise<void> {
  const cfg = config();
  const logger = createLogger(cfg);
  const system = await createSystem(cfg, logger);
  const adminKey = await bootstrapAdminKey(system);
  if (adminKey) {
    process.stdout.write(
      `\nNo API keys existed, so an admin key was created. It is shown only this once; store it now:\n\n  ${adminKey}\n\n` +
        `Use it as: curl -H "Authorization: Bearer ${adminKey}" http://localhost:${cfg.port}/api/v1/campaigns\n\n`,
    );
  }
  const app = await serve(system);
  // `start` is the all-in-one: a worker runs beside the API.
  const worker = mode === 'start' ? startWorker(system, system.jobs, workerDefaults(cfg)) : undefined;
  logger.info(
    { mode, database: system.database.dialect, url: `http://${cfg.host}:${cfg.port}`, docs: '/docs' },
    'OmniVibe Pro API listening',
  );
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await worker?.stop({ timeoutMs: cfg.jobs.worker.shutdownTimeoutMs });
    await app.close();
    await system.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

export function buildCli(): Command {
  const program = new Command('omnivibe')
    .description('OmniVibe Pro backend: API, workers and operations for AI video production')
    .version(version)
    .showHelpAfterError()
    // No command: the help, exit 0. An unknown one: an error naming it, exit 1.
    .allowExcessArguments()
    .action(() => {
      if (program.args.length > 0) program.error(`error: unknown command '${program.args[0]}'`);
      program.help();
    });

  program
    .command('start')
    .description(
      'Embedded all-in-one: the API on a SQLite database under DATA_DIR (migrations applied automatically)',
    )
    .action(() => runServer('start'));

  program
    .command('serve')
    .description('The API only (run many behind a proxy in distributed mode)')
    .action(() => runServer('serve'));

  registerWorkerCommands(program, config);

  const migrate = program
    .command('migrate')
    .description('Apply pending database migrations (safe to run from several processes at once)')
    .action(async () => {
      const cfg = config();
      const db = openDatabase(cfg.database);
      try {
        const { applied } = await migrateToLatest(db.db, cfg.database);
        process.stdout.write(
          applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n',
        );
      } finally {
        await db.close();
      }
    });
  migrate
    .command('status')
    .description('List migrations and when each ran')
    .action(async () => {
      const cfg = config();
      const db = openDatabase(cfg.database);
      try {
        for (const m of await migrationStatus(db.db, db.dialect)) {
          process.stdout.write(
            `${m.executedAt ? 'applied' : 'pending'}  ${m.name}${m.executedAt ? `  ${m.executedAt}` : ''}\n`,
          );
        }
      } finally {
        await db.close();
      }
    });

  const keys = program.command('keys').description('Manage API keys');
  keys
    .command('create')
    .description('Create a key; it is printed once')
    .addOption(new Option('--role <role>', 'admin, editor or viewer').choices(ROLES).makeOptionMandatory())
    .requiredOption('--name <name>', 'who or what the key is for')
    .action((opts: { role: Role; name: string }) =>
      withSystem(async (s) => {
        const { key, record } = await s.apiKeys.create(opts.name, opts.role);
        process.stdout.write(`${key}\n`);
        process.stderr.write(
          `created key ${record.id} (${record.prefix}…, ${record.role}, "${record.name}")\n`,
        );
      }),
    );
  keys
    .command('list')
    .description('List keys (never their secrets)')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) =>
      withSystem(async (s) => {
        const list = await s.apiKeys.list();
        if (opts.json) return void process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        for (const k of list) {
          process.stdout.write(
            `${String(k.id).padStart(4)}  ${k.prefix}…  ${k.role.padEnd(6)}  ${k.revoked_at ? 'revoked' : 'active '}  ${k.name}\n`,
          );
        }
      }),
    );
  keys
    .command('revoke')
    .description('Revoke a key by id')
    .argument('<id>', 'key id (see keys list)', positiveInt)
    .action((id: number) =>
      withSystem(async (s) => {
        const k = await s.apiKeys.revoke(id);
        process.stdout.write(`revoked key ${k.id} (${k.prefix}…)\n`);
      }),
    );

  program
    .command('alerts')
    .description('Alert notifications (see docs/observability.md)')
    .command('test')
    .description(
      'Send a test notification to each configured channel (Slack, email, webhook) and report each result',
    )
    .action(() =>
      withSystem(async (s) => {
        const notifier = s.telemetry?.alerts.notifier;
        if (!notifier || notifier.channelNames.length === 0) {
          process.stderr.write(
            'no alert channel is configured: set ALERT_SLACK_WEBHOOK_URL, ALERT_SMTP_URL with ALERT_EMAIL_TO, or ALERT_WEBHOOK_URL\n',
          );
          process.exitCode = 1;
          return;
        }
        for (const r of await notifier.test()) {
          process.stdout.write(r.ok ? `${r.channel}: sent\n` : `${r.channel}: FAILED: ${r.error}\n`);
          if (!r.ok) process.exitCode = 1;
        }
      }),
    );

  program
    .command('seed-demo')
    .description('Create a sample client, campaign and content with a Korean script')
    .action(() =>
      withSystem(async (s) => {
        const r = await seedDemo(s.services);
        process.stdout.write(
          `${JSON.stringify({ client_id: r.client.id, campaign_id: r.campaign.id, content_id: r.content.id, blocks: r.script.block_count })}\n`,
        );
      }),
    );
  program
    .command('demo')
    .description(
      'Create a sample Korean campaign, narrate it with the local TTS and render a TikTok video, in a data directory of its own (embedded, whatever DATABASE_URL, REDIS_URL or the media storage say)',
    )
    .option('--data-dir <dir>', 'where the demo keeps its database and media (default: $DATA_DIR/demo)')
    .action((o: { dataDir?: string }) => {
      const dataDir = path.resolve(o.dataDir ?? path.join(config().dataDir, 'demo'));
      const env = Object.fromEntries(
        Object.entries(process.env).filter(([name]) => !DATA_LOCATION_VARS.includes(name)),
      );
      return withSystem(
        async (s) => {
          const log = (line: string) => process.stdout.write(`${line}\n`);
          let t0 = performance.now();
          const seeded = await seedDemo(s.services);
          const seedMs = Math.round(performance.now() - t0);
          log(
            `seeded campaign ${seeded.campaign.id} "${seeded.campaign.name}", content ${seeded.content.id} (${seeded.script.block_count} blocks) in ${seedMs} ms`,
          );
          t0 = performance.now();
          const r = await runMediaDemo(s.media, seeded.content.id, { onStep: log });
          log(
            `narration: ${r.narration.status}, ${r.narration.duration_s} s of audio in ${r.timings_ms.narrate} ms → ${r.narration.audio}`,
          );
          log(
            `verifier:  ${r.narration.verifier} (${r.narration.verifier_checks}); score ${r.narration.score}, word similarity ${r.narration.similarity ?? 'not measured'}`,
          );
          log(`video:     ${r.video} (${(r.size_bytes / 1e6).toFixed(2)} MB) in ${r.timings_ms.render} ms`);
          log(`thumbnail: ${r.thumbnail}`);
          log(`total:     ${Math.round(performance.now() - t0) + seedMs} ms`);
          log(`data:      ${dataDir}`);
        },
        config({ ...env, DATA_DIR: dataDir }),
      );
    });
  return program;
}

buildCli()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`omnivibe: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
