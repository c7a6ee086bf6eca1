import { defineConfig, type ViteUserConfig } from 'vitest/config';

// Temporal workers must run in the forks pool (sdk-typescript#876). One file at a time: the machine has
// two cores and the integration files each start real servers.
export const testOptions: NonNullable<ViteUserConfig['test']> = {
  pool: 'forks',
  include: ['test/**/*.test.ts'],
  setupFiles: ['test/setup/runtime.ts'],
  fileParallelism: false,
  testTimeout: 120_000,
  hookTimeout: 180_000,
  slowTestThreshold: 10_000,
};

export default defineConfig({
  test: { ...testOptions, globalSetup: ['test/setup/temporal-server.ts'] },
});
