// Runs the LiteMaaS backend's own applyMigrations (backend/src/lib/database-migrations.ts) on
// DATABASE_URL, as the backend does at every start. Prints {"seconds": ...}.
import { main } from './bare-fastify';

void main(async (app) => {
  const { applyMigrations } = await import('../src/lib/database-migrations');
  const started = process.hrtime.bigint();
  await applyMigrations(app.dbUtils);
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9 };
});
