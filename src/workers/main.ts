import { loadConfig } from '../config.js';
import { createWorker } from './worker.js';

// `npm run worker`: runs until SIGINT/SIGTERM (the SDK installs the handlers and drains in-flight work).
const config = loadConfig(process.env);
const worker = await createWorker(config);
await worker.run();
