// Runs the LiteMaaS backend's own ModelSyncService.syncModels (backend/src/services/
// model-sync.service.ts) once against DATABASE_URL, reading LITELLM_API_URL's /model/info with
// LITELLM_API_KEY (and LITELLM_DATABASE_URL's LiteLLM_ProxyModelTable when set, as upstream
// recommends). argv[2]: JSON ModelSyncOptions (default: what the backend uses at start-up).
// Prints {"result": <ModelSyncResult>, "seconds": <the call alone>}.
import { main } from './bare-fastify';

void main(async (app) => {
  if (!process.env.LITELLM_API_URL) {
    throw new Error('LITELLM_API_URL is not set (a LiteLLM proxy serving /model/info)');
  }
  const options = process.argv[2]
    ? JSON.parse(process.argv[2])
    : { forceUpdate: false, markUnavailable: true };
  const { ModelSyncService } = await import('../src/services/model-sync.service');
  const service = new ModelSyncService(app);
  const started = process.hrtime.bigint();
  const result = await service.syncModels(options);
  return { result, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
});
