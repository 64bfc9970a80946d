import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layers of src/ (docs/architecture.md): cmd -> {controller, agent} -> {kube, cri, obs} -> api.
 * Each folder lists the folders it must not import from; the local cluster and the install tools
 * sit beside cmd, and no product code imports them.
 */
const forbidden = {
  api: ['kube', 'cri', 'obs', 'controller', 'agent', 'install', 'localcluster', 'cmd'],
  kube: ['cri', 'controller', 'agent', 'install', 'localcluster', 'cmd'],
  obs: ['kube', 'cri', 'controller', 'agent', 'install', 'localcluster', 'cmd'],
  cri: ['api', 'kube', 'controller', 'agent', 'install', 'localcluster', 'cmd'],
  controller: ['cri', 'agent', 'install', 'localcluster', 'cmd'],
  agent: ['controller', 'install', 'localcluster', 'cmd'],
  install: ['controller', 'agent', 'localcluster', 'cmd'],
  localcluster: ['controller', 'install', 'cmd'],
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
