// The layer and folder order of src/, checked by eslint-plugin-boundaries.
//
// FOLDERS lists every folder of src/ that holds modules, lowest first. A module may import only from
// its own folder and the folders listed before it: the layers (base ← format ← storage ← read ←
// engine ← app) stay one-way and no two folders can import each other, directly or around a loop.
// A new folder must be added here, at the place its imports allow.
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import boundaries from 'eslint-plugin-boundaries'

const LAYERS = ['base', 'format', 'storage', 'read', 'engine', 'app']

const FOLDERS = [
  'src/base/errors',
  'src/base',
  'src/format',
  'src/format/index',
  'src/format/car',
  'src/storage/state',
  'src/storage/transients',
  'src/storage/remote',
  'src/storage/mount',
  'src/storage/index',
  'src/storage/postgres',
  'src/read',
  'src/engine/observe',
  'src/engine/shard',
  'src/engine/accessor',
  'src/engine/loop',
  'src/engine/gc',
  'src/engine',
  'src/app',
  'src/app/server',
  'src/app/cli',
  'src/app/cli/commands'
]

// The package entries may import any folder: the root (src/index.ts) and dagstore/testing (src/testing/).
const isEntryFolder = (folder) => folder === 'src' || folder === 'src/testing' || folder.startsWith('src/testing/')

// Entry files inside a layer gather a public surface from any folder of their layer or a lower
// one: the bin hands the process to the CLI program, dagstore/format re-exports the codecs.
const LAYER_ENTRIES = [
  { folder: 'src/app/cli', file: 'main.ts' },
  { folder: 'src/format', file: 'api.ts' }
]

const root = fileURLToPath(new URL('..', import.meta.url))
const layerOf = (folder) => folder.split('/')[1]
const inLayers = (names) => names.flatMap((layer) => [`src/${layer}`, `src/${layer}/**`])

// The folder order must not contradict the layer order, or the two rules would disagree.
FOLDERS.reduce((previous, folder) => {
  const rank = LAYERS.indexOf(layerOf(folder))
  if (rank < 0) throw new Error(`lint/layers.js: ${folder} is in no layer of ${LAYERS.join(', ')}`)
  if (rank < previous) throw new Error(`lint/layers.js: ${folder} is listed after a folder of a higher layer`)
  return rank
}, 0)

// A folder element holds its subfolders too, so an undeclared subfolder would pass unchecked.
for (const entry of readdirSync(`${root}/src`, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.ts')) continue
  const folder = entry.parentPath.slice(root.length).replaceAll('\\', '/').replace(/^\//, '')
  if (!isEntryFolder(folder) && !FOLDERS.includes(folder)) {
    throw new Error(`lint/layers.js: ${folder} holds modules but is not in FOLDERS; add it where its imports allow`)
  }
}

const element = (type) => ({ element: { type } })

export const layers = {
  files: ['src/**/*.ts'],
  plugins: { boundaries },
  settings: {
    'boundaries/root-path': root,
    'boundaries/include': ['src/**/*.ts'],
    // An element is a folder with its subfolders and the first match wins: a subfolder before its
    // parent, and what is left of src/ (the entries) last.
    'boundaries/elements': [
      ...[...FOLDERS].sort((a, b) => b.length - a.length).map((folder) => ({ type: folder, pattern: folder, partialMatch: false })),
      { type: 'entry', pattern: 'src', partialMatch: false }
    ],
    'import/resolver': { typescript: { project: 'tsconfig.json' } }
  },
  rules: {
    // Every module of src/ is an entry or in a listed folder, and src/ imports nothing else of the repo.
    'boundaries/no-unknown-files': 'error',
    'boundaries/no-unknown-dependencies': 'error',
    'boundaries/dependencies': ['error', {
      default: 'disallow',
      message: '{{from.type}} may not import {{to.type}}: a folder imports only from itself and the folders listed before it in lint/layers.js',
      policies: [
        { from: element('entry'), allow: { to: element('**') } },
        ...FOLDERS.map((folder, i) => ({ from: element(folder), allow: { to: element(FOLDERS.slice(0, i + 1)) } })),
        ...LAYER_ENTRIES.map(({ folder, file }) => ({
          from: { element: { type: folder, fileInternalPath: file } },
          allow: { to: element(FOLDERS.filter((f) => LAYERS.indexOf(layerOf(f)) <= LAYERS.indexOf(layerOf(folder)))) }
        })),
        ...LAYERS.slice(0, -1).map((layer, i) => ({
          from: element(inLayers([layer])),
          disallow: { to: element(inLayers(LAYERS.slice(i + 1))) },
          message: `layer ${layer} may not import {{to.type}}: layers import only downward, ${LAYERS.join(' ← ')}`
        }))
      ]
    }]
  }
}
