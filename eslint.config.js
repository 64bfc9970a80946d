import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layers of src/ (docs/architecture.md): cmd -> {controller, agent, subresources, plugin} ->
 * {kube, cri, obs} -> api.
 * Each folder lists the folders it must not import from; the local cluster and the install tools
 * sit beside cmd, and no product code imports them.
 */
const forbidden = {
  api: [
    'kube',
    'cri',
    'obs',
    'controller',
    'agent',
    'subresources',
    'plugin',
    'install',
    'localcluster',
    'cmd',
  ],
  kube: ['cri', 'controller', 'agent', 'subresources', 'plugin', 'install', 'localcluster', 'cmd'],
  obs: ['kube', 'cri', 'controller', 'agent', 'subresources', 'plugin', 'install', 'localcluster', 'cmd'],
  cri: ['api', 'kube', 'controller', 'agent', 'subresources', 'plugin', 'install', 'localcluster', 'cmd'],
  controller: ['cri', 'agent', 'subresources', 'plugin', 'install', 'localcluster', 'cmd'],
  agent: ['controller', 'subresources', 'plugin', 'install', 'localcluster', 'cmd'],
  subresources: ['cri', 'controller', 'agent', 'plugin', 'install', 'localcluster', 'cmd'],
  plugin: ['cri', 'controller', 'agent', 'subresources', 'install', 'localcluster', 'cmd'],
  install: ['controller', 'agent', 'subresources', 'plugin', 'localcluster', 'cmd'],
  localcluster: ['controller', 'subresources', 'plugin', 'install', 'cmd'],
};

const layerRules = Object.entries(forbidden).map(([folder, others]) => ({
  files: [`src/${folder}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: `^(\\.\\./)+(${others.join('|')})/`,
            message: `src/${folder} must not import from src/{${others.join(',')}} (layers: docs/architecture.md)`,
          },
        ],
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'charts/', 'crds/', 'src/cri/generated/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  ...layerRules,
);
