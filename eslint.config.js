// The one lint config (npm run lint, run by npm test before vitest). typescript-eslint's
// recommended type-checked rules over every package's src and tests, and the root tests; ESLint's
// recommended rules over the plain JavaScript launchers and bench scripts. Repository rules lint
// cannot express live in test/tidy.test.ts.
import js from '@eslint/js'
import { defineConfig, globalIgnores } from 'eslint/config'
import tseslint from 'typescript-eslint'

export default defineConfig(
  globalIgnores(['**/dist/', '**/node_modules/', 'coverage/', '.hsmlab/']),
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        // One program over every src and test (see tsconfig.test.json): much faster than one a package.
        project: ['./tsconfig.test.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // Off: an async function with no await is how this code implements a Promise-returning
      // interface (handlers, supervisors, fakes), and it turns a synchronous throw into a rejection.
      '@typescript-eslint/require-await': 'off',
      // A leading underscore marks a parameter an interface requires but this implementation does
      // not use, and a rest sibling drops a field (`{ password: _password, ...user }`).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      // A `let` assigned once, after a closure that reads it was made (a callback wired before
      // the object it calls exists), cannot be a const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // Rejecting with a caught `unknown` passes on what was thrown, as a rethrow does (which
      // only-throw-error allows).
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      'no-restricted-properties': ['error',
        { object: 'describe', property: 'only', message: 'A focused test hides the rest of the suite.' },
        { object: 'it', property: 'only', message: 'A focused test hides the rest of the suite.' },
        { object: 'test', property: 'only', message: 'A focused test hides the rest of the suite.' },
      ],
    },
  },
  {
    files: ['packages/*/src/**/*.ts'],
    rules: {
      '@typescript-eslint/explicit-module-boundary-types': 'error',
    },
  },
  {
    files: ['packages/*/test/**/*.ts', 'test/**/*.ts'],
    rules: {
      // Off in tests: vitest's asymmetric matchers (`expect.any(Number)`,
      // `expect.stringContaining(...)`) are typed `any`, and tests read `JSON.parse` output to
      // assert on it; the assertion is the type check there. They stay on in src.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Libraries do not print: they log through the injected logger. The bins are the CLI.
    files: ['packages/*/src/**/*.ts'],
    ignores: ['packages/*/src/bin/**'],
    rules: { 'no-console': 'error' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    extends: [js.configs.recommended],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', performance: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', fetch: 'readonly' },
    },
  },
  {
    // The console's page: browser modules served as they are (no build step), with the browser's globals.
    files: ['packages/console/web/**/*.js'],
    languageOptions: {
      globals: { window: 'readonly', document: 'readonly', location: 'readonly', sessionStorage: 'readonly', EventSource: 'readonly', WebSocket: 'readonly', addEventListener: 'readonly', removeEventListener: 'readonly', requestAnimationFrame: 'readonly', navigator: 'readonly', HTMLElement: 'readonly' },
    },
  },
)
