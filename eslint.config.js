// Type-aware lint for every package (STYLE.md: strict TS, no floating promises, no `any` across boundaries).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

const NO_DEEP_IMPORTS = {
  group: ['@flotilla/*/src/*', '../../*/src/*'],
  message: 'Import a package by its name, never its src/.',
};

/**
 * The package layers (DESIGN.md): protocol ← node-kit ← store ← server / agent / gateway ← cli.
 * A package may import only the packages below it; server, agent and gateway never import each other.
 */
const LAYERS = {
  protocol: [],
  'node-kit': ['protocol'],
  store: ['protocol', 'node-kit'],
  server: ['protocol', 'node-kit', 'store'],
  agent: ['protocol', 'node-kit', 'store'],
  gateway: ['protocol', 'node-kit', 'store'],
  web: ['protocol'],
  cli: ['protocol', 'node-kit', 'store', 'server', 'agent', 'gateway', 'web'],
};

function layerRules(pkg, below) {
  const forbidden = Object.keys(LAYERS).filter((other) => other !== pkg && !below.includes(other));
  const patterns = [NO_DEEP_IMPORTS];
  if (forbidden.length > 0)
    patterns.push({
      group: forbidden.map((other) => `@flotilla/${other}`),
      message: `${pkg} may import only ${below.map((b) => `@flotilla/${b}`).join(', ') || 'no other package'} (the layers in DESIGN.md).`,
    });
  const paths = [];
  if (pkg === 'protocol')
    patterns.push({
      group: ['node:*'],
      message: 'The contract must load in a browser: Node-only code belongs in @flotilla/node-kit.',
    });
  return {
    files: [`packages/${pkg}/src/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { patterns, paths }] },
  };
}

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'eslint.config.js', 'scripts/**', '.flotilla/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/explicit-module-boundary-types': 'off',
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@flotilla/*/src/*', '../../*/src/*'],
              message: 'Import a package by its name, never its src/.',
            },
          ],
        },
      ],
    },
  },
  ...Object.entries(LAYERS).map(([pkg, below]) => layerRules(pkg, below)),
  {
    // Named exports only from a package's entry points: what a package offers is written down.
    files: [
      'packages/*/src/index.ts',
      'packages/protocol/src/errors.ts',
      'packages/store/src/rebuild-api.ts',
    ],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'ExportAllDeclaration',
          message: 'List the exports by name: no `export *` from a package entry point.',
        },
      ],
    },
  },
  {
    // No import cycles inside a package (a folder is a layer too: nothing imports back up).
    files: ['packages/*/src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [
        createTypeScriptImportResolver({
          project: 'packages/*/tsconfig.json',
          noWarnOnMultipleProjects: true,
        }),
      ],
    },
    rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
  },
  {
    files: ['**/test/**/*.ts', 'test/e2e/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
  // CommonJS files (a worker entry that must not be an ES module): no type information.
  {
    files: ['**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable' },
      parserOptions: { projectService: false, project: null },
    },
    rules: { ...tseslint.configs.disableTypeChecked.rules, '@typescript-eslint/no-require-imports': 'off' },
  },
);
