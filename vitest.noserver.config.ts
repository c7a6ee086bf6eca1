import { defineConfig } from 'vitest/config';
import { testOptions } from './vitest.config.js';

// For iterating on tests that need no Temporal server (clients, emulators, activities).
export default defineConfig({ test: { ...testOptions } });
