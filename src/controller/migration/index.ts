// The Migration controller (see reconciler.ts): what the rest of the code and the tests use.
export { MigrationReconciler } from './reconciler.js';
export { setupMigrationController } from './setup.js';
export { targetName, type MigrationReconcilerDeps } from './steps.js';
