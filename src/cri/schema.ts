// The CRI schema and how it is loaded: one definition shared by the client, which loads
// runtime.proto at run time, and the type generator (codegen.ts, `npm run gen:cri`), which turns
// the same options into its flags, so that the types in generated/ describe exactly the objects
// grpc-js hands the client.
import { fileURLToPath } from 'node:url';
import type * as protoLoader from '@grpc/proto-loader';

/** runtime.proto, next to this module (src/ under tsx, dist/ when built: the build copies it). */
export const SCHEMA_FILE = fileURLToPath(new URL('./runtime.proto', import.meta.url));

/**
 * proto-loader's conversion options (protobufjs' toObject), which decide what a decoded message is:
 * - keepCase false: camelCase field names (podSandboxId);
 * - longs unset: 64-bit integers are `Long` objects (the client turns them into bigints);
 * - enums String: enum values are their upstream names (CONTAINER_RUNNING);
 * - bytes unset: Buffers;
 * - defaults true: every scalar, list and map is present (proto3 defaults); an absent
 *   sub-message is null (the client turns it into undefined);
 * - oneofs unset: runtime.proto has none.
 */
export const LOADER_OPTIONS = {
  keepCase: false,
  enums: String,
  defaults: true,
} as const satisfies protoLoader.Options;
