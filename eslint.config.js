import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layer map (docs/architecture.md): a module may import its own layer's and lower layers'
 * modules, never a higher layer's. Type-only imports count too: a lower layer that needs a
 * higher layer's type is a sign the type lives in the wrong place.
 */
const LAYERS = [
  ['config', 'errors'],
  ['db'],
  ['cache', 'jobs'],
  ['domain', 'auth'],
  ['media', 'tasks', 'telemetry', 'domain-cache'],
  ['api'],
  ['main'],
];
/** Siblings in one layer that must not know each other. */
const SIBLINGS_APART = { cache: ['jobs'], jobs: ['cache'], media: ['tasks'] };

const layerRules = LAYERS.flatMap((layer, rank) => {
  const above = LAYERS.slice(rank + 1).flat();
  return layer.map((dir) => {
    const banned = [...above, ...(SIBLINGS_APART[dir] ?? [])];
    return {
      files: dir === 'errors' ? ['src/errors.ts'] : [`src/${dir}/**/*.ts`],
      rules: {
        'no-restricted-imports': [
          'error',
          {
            patterns: [
              {
                regex: `^(\\.\\./)+(${banned.join('|')})(/|\\.js$)`,
                message: `${dir}/ sits below ${banned.join(', ')} in the layer map (docs/architecture.md): pass what it needs in from above.`,
              },
            ],
          },
        ],
      },
    };
  });
});

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'data/**',
      'coverage/**',
      'scratch/**',
      'run/**',
      'logs/**',
      'native/*/build/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-empty': ['error', { allowEmptyCatch: false }],
      eqeqeq: ['error', 'always'],
    },
  },
  ...layerRules,
  {
    // The API reaches data through the domain and media services: from db/ it takes types, the
    // closed vocabularies (db/types.ts) and the page-size cap, never a function.
    files: ['src/api/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^(\\.\\./)+db/(?!types\\.js$|pagination\\.js$)',
              allowTypeImports: true,
              message:
                'api/ takes only types from db/ (docs/architecture.md): pass the function in through AppDeps.',
            },
          ],
        },
      ],
    },
  },
  {
    // CommonJS entry points (the native addon's loader).
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
