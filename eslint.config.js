import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'
import importX from 'eslint-plugin-import-x'
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript'
import { layers } from './lint/layers.js'

// A line may run past the limit only for a long string or template literal (a message, a test
// title): splitting one hides what it says. URLs and regexes may too.
const LONG_LITERAL = String.raw`'[^']{80,}'|"[^"]{80,}"|` + '`[^`]{80,}`'

export default [
  ...neostandard({ ts: true, noJsx: true, ignores: resolveIgnoresFromGitignore() }),
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@stylistic/max-len': ['error', { code: 150, ignoreUrls: true, ignoreRegExpLiterals: true, ignorePattern: LONG_LITERAL }],
      // `void promise` marks a promise that is deliberately not awaited.
      'no-void': ['error', { allowAsStatement: true }],
      // `for (const x of it) { ...; break }` takes the first item of an iterable.
      'no-unreachable-loop': ['error', { ignore: ['ForOfStatement'] }],
      // A `let` that a callback reads before its single assignment cannot become a const.
      'prefer-const': ['error', { destructuring: 'all', ignoreReadBeforeAssign: true }]
    }
  },
  {
    files: ['**/*.ts'],
    rules: {
      // `any` is allowed only where a disable comment says why.
      '@typescript-eslint/no-explicit-any': 'error',
      // As tsc's noUnusedLocals: a name starting with _ is unused on purpose.
      '@typescript-eslint/no-unused-vars': ['error', {
        args: 'none', caughtErrors: 'none', ignoreRestSiblings: true, vars: 'all', varsIgnorePattern: '^_'
      }]
    }
  },
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      // import-x reads the imports of .ts files only when told they are modules and how to parse them.
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      // The sources import './x.js' for x.ts: only the TypeScript resolver maps that.
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: 'tsconfig.json' })]
    },
    rules: {
      // A cycle cannot pass through a package, so packages are not traversed.
      'import-x/no-cycle': ['error', { ignoreExternal: true }]
    }
  },
  layers
]
