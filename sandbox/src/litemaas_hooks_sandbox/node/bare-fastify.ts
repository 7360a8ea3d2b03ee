// A bare Fastify instance with the LiteMaaS backend's own database plugin registered (it decorates
// fastify.pg and fastify.dbUtils), for running the backend's own code outside its server.
//
// litemaas-hooks' sandbox copies this folder into <backend>/.lmh/ of an unpacked LiteMaaS tree and
// runs the scripts there with the tree's tsx, so every import below resolves inside that tree.
// stdout carries one JSON document (the script's result); everything else (the backend's console.log
// and its pino log) goes to stderr.
import Fastify, { FastifyInstance } from 'fastify';

console.log = (...args: unknown[]) => console.error(...args);
console.info = (...args: unknown[]) => console.error(...args);

export async function bareFastify(): Promise<FastifyInstance> {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    throw new Error('DATABASE_URL is not set (the LiteMaaS backend database URL)');
  }
  const app = Fastify({
    logger: { level: process.env.LOG_LEVEL || 'warn', stream: process.stderr },
  });
  // what the backend's env plugin would decorate; the database plugin reads these
  app.decorate('config', {
    DATABASE_URL: databaseUrl,
    NODE_ENV: 'development', // ssl off: the sandbox server speaks plain TCP
    DB_MAX_CONNECTIONS: process.env.DB_MAX_CONNECTIONS || '5',
    DB_IDLE_TIMEOUT: '30000',
    DB_CONNECTION_TIMEOUT: '10000',
  } as never);
  const { default: databasePlugin } = await import('../src/plugins/database');
  // register without ready(): its onReady hook (migrations + a background model sync) must not run
  await app.register(databasePlugin);
  return app;
}

export function emit(result: unknown): void {
  process.stdout.write(JSON.stringify(result) + '\n');
}

export async function main(run: (app: FastifyInstance) => Promise<unknown>): Promise<void> {
  let app: FastifyInstance | undefined;
  try {
    app = await bareFastify();
    emit(await run(app));
  } catch (error) {
    console.error('litemaas-hooks sandbox script failed:', error);
    process.exitCode = 1;
  } finally {
    if (app) {
      await app.close();
    }
  }
}
