import { defineConfig, type ViteUserConfig } from 'vitest/config';

// Temporal workers must run in the forks pool (sdk-typescript#876). One file at a time: the machine has
// two cores and the integration files each start real servers.
export const testOptions: NonNullable<ViteUserConfig['test']> = {
  pool: 'forks',
  include: ['test/**/*.test.ts'],
  setupFiles: ['test/setup/runtime.ts'],
  fileParallelism: false,
  // Hang guards, not timing goals: an end-to-end phase takes about two minutes on an idle 2-core box and must still
  // pass while another process keeps both cores busy.
  testTimeout: 600_000,
  hookTimeout: 600_000,
  slowTestThreshold: 10_000,
};

export default defineConfig({
  test: { ...testOptions, globalSetup: ['test/setup/temporal-server.ts'] },
});
