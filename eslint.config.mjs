// ESLint for the whole repository: the tasks, the tests and tools at the root, and the sample app.
// Type-aware rules come from typescript-eslint's projectService, which finds each file's nearest tsconfig.json.
// Formatting is Prettier's job (`prettier --check` runs beside this in `npm run lint`), so no stylistic rules here.
import js from '@eslint/js';
import simpleImportSort from 'eslint-plugin-simple-import-sort';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/',
      'dist/',
      '.tmp/',
      'bench/.work/',
      'tasks/*/index.js',
      'sample-app/dist/',
      'sample-app/.test-build/',
      'test/support/node24/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'module',
      globals: { ...globals.node },
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'simple-import-sort': simpleImportSort },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Promises: an unawaited promise hides a failure; a promise where a callback is expected is never awaited.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      // Types: imports of types are erased by esbuild's isolatedModules build, so say so at the import.
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-import-type-side-effects': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true, requireDefaultForNonUnion: false },
      ],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
      '@typescript-eslint/prefer-optional-chain': 'error',
      // Off: async methods that implement a Promise-returning interface without awaiting turn a throw into a rejection,
      // which is what callers of the interface expect.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/prefer-nullish-coalescing': ['error', { ignorePrimitives: { string: true, boolean: true } }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-console': 'off',
      'prefer-const': 'error',
      'object-shorthand': 'error',
      'no-var': 'error',
      'simple-import-sort/imports': 'error',
      'simple-import-sort/exports': 'error',
    },
  },
  {
    // Tasks talk to each other through outputs and files on the agent, never by importing another task's folder:
    // what two tasks share lives in tasks/common (test/package/contracts.test.ts checks the same from the imports).
    files: ['tasks/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^\\.\\./(?!common(/|$))[A-Z][A-Za-z]+',
              caseSensitive: true,
              message: 'Import shared code from tasks/common, not from another task.',
            },
          ],
        },
      ],
    },
  },
  {
    // Tests and benchmarks read JSON answers (registry manifests, Kubernetes objects, task outputs) as `any` and assert on
    // them: the assertion is the check, so the no-unsafe-* family would only add casts.
    files: ['test/**/*.ts', 'sample-app/test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    // The stand-in servers validate decoded JSON (`unknown`) and print values back as the real services do.
    files: ['test/support/**/*.ts'],
    rules: {
      '@typescript-eslint/no-base-to-string': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
    },
  },
  {
    // Plain JavaScript build scripts: no type information to lint with.
    files: ['**/*.mjs', '**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
