// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

const nodeBuiltins = [
  'fs',
  'fs/promises',
  'path',
  'os',
  'child_process',
  'net',
  'http',
  'https',
  'crypto',
  'stream',
  'events',
  'readline',
  'worker_threads',
  'process',
  'timers',
].flatMap((m) => [m, `node:${m}`]);

/**
 * One room per system (src/activities/<system>/): another system, the worker, the CLI or the plan reaches a system only
 * through its index.ts, so each folder's inner files can change without reaching into the others.
 */
const fromSibling = {
  // From inside src/activities/<system>/: a sibling system's inner file.
  regex: '^\\.\\./(?!\\.\\.)[^/]+/(?!index\\.js$)[^/]+$',
  message: "Import another system through its index.ts ('../<system>/index.js').",
};
const fromActivitiesRoot = {
  // From src/activities/*.ts: a system's inner file.
  regex: '^\\./(?!index\\.js$)[^/]+/(?!index\\.js$)[^/]+$',
  message: "Import a system through its index.ts ('./<system>/index.js').",
};
const fromElsewhere = {
  // From the rest of src/: a system's inner file.
  regex: '(^|/)activities/[^/]+/(?!index\\.js$)[^/]+$',
  message: "Import a system through its index.ts ('../activities/<system>/index.js').",
};
const noSandbox = {
  regex: '(^|/)sandbox/',
  message: 'Production code must not import the sandbox (only the CLI, which starts it on request).',
};

export default tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', '.venv/**', '.sandbox/**', 'results/**', 'dist/**', 'pod/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] } },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/consistent-type-exports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
      eqeqeq: 'error',
    },
  },
  {
    // The CLI, the sandbox daemons and scripts talk to a person on a terminal.
    files: ['src/cli/**', 'sandbox/**', 'scripts/**', 'test/**'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/workflows/**', 'src/activities/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [fromElsewhere, noSandbox] }] },
  },
  {
    files: ['src/activities/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [fromActivitiesRoot, noSandbox] }] },
  },
  {
    files: ['src/activities/*/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [fromSibling, noSandbox] }] },
  },
  {
    // The CLI starts the sandbox on request (`--sandbox`, `npm run sandbox`): the one place that may import it.
    files: ['src/cli/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [fromElsewhere] }] },
  },
  {
    // Workflow code is bundled into Temporal's deterministic sandbox: activity *types* only, no I/O.
    files: ['src/workflows/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [...nodeBuiltins, 'ssh2', 'yaml'],
          patterns: [
            {
              group: ['**/activities/*/client*', '**/activities/*/client'],
              message: 'Workflows must not import clients.',
            },
            {
              group: ['@temporalio/activity', '@temporalio/client', '@temporalio/worker'],
              message: 'Not allowed in workflow code.',
            },
            fromElsewhere,
            noSandbox,
          ],
        },
      ],
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/activities/**'], allowTypeImports: true, message: 'Import activity types only.' }] },
      ],
    },
  },
  prettier,
);
