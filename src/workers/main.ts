import { loadConfig, loadDotEnv } from '../config.js';
import { createWorker } from './worker.js';

// `npm run worker`: runs until SIGINT/SIGTERM (the SDK installs the handlers and drains in-flight work).
// The project's .env (as .env.example describes); variables already set win.
loadDotEnv(process.cwd());
const config = loadConfig(process.env);
const worker = await createWorker(config);
await worker.run();
