import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'

export default [
  ...neostandard({ ts: true, noJsx: true, ignores: resolveIgnoresFromGitignore() }),
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
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
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none', caughtErrors: 'none', ignoreRestSiblings: true, vars: 'all', varsIgnorePattern: '^_' }]
    }
  }
]
