// Between the generated types and the client's: the RPC table loaded from runtime.proto, and the
// one conversion the client applies to every message, at run time and in the types.
//
// grpc-js hands back the generated `Foo__Output` (see schema.ts: LOADER_OPTIONS); the client
// returns Decoded<Foo__Output>, which differs in two ways only:
// - 64-bit integers are bigints, not `Long`s (CRI timestamps are unix nanoseconds, beyond 2^53);
// - an absent sub-message is an absent (undefined) field, not null.
// Requests are Encodable<Foo>: the generated permissive type (every field optional, enums by name
// or number), whose 64-bit integers may also be bigints.
import * as protoLoader from '@grpc/proto-loader';
import type { ImageServiceDefinition } from './generated/runtime/v1/ImageService.js';
import type { RuntimeServiceDefinition } from './generated/runtime/v1/RuntimeService.js';
import { LOADER_OPTIONS, SCHEMA_FILE } from './schema.js';

/** A decoded message as the client returns it: int64 as bigint, no nulls (see above). */
export type Decoded<T> = T extends protoLoader.Long
  ? bigint
  : T extends Uint8Array
    ? T
    : T extends readonly (infer E)[]
      ? Decoded<E>[]
      : T extends object
        ? Flat<
            { [K in keyof T as null extends T[K] ? never : K]: Decoded<T[K]> } & {
              [K in keyof T as null extends T[K] ? K : never]?: Decoded<Exclude<T[K], null>>;
            }
          >
        : T;

/** A request as the client takes it: the generated permissive type, int64 also as bigint. */
export type Encodable<T> = T extends protoLoader.Long
  ? bigint
  : T extends Uint8Array
    ? T
    : T extends readonly (infer E)[]
      ? Encodable<E>[]
      : T extends object
        ? { [K in keyof T]: Encodable<T[K]> }
        : T;

type Flat<T> = { [K in keyof T]: T[K] };
/** The named keys of T, without the index signature grpc-js' ServiceDefinition adds. */
type KnownKeys<T> = keyof { [K in keyof T as string extends K ? never : number extends K ? never : K]: 0 };

type Services = RuntimeServiceDefinition & ImageServiceDefinition;
/** An RPC of RuntimeService or ImageService, by its upstream name. */
export type CriMethod = KnownKeys<RuntimeServiceDefinition> | KnownKeys<ImageServiceDefinition>;
/** What the client's method for M takes. */
export type CriRequest<M extends CriMethod> =
  Services[M] extends protoLoader.MethodDefinition<infer Req, infer _Res, infer _ReqOut, infer _ResOut>
    ? Encodable<Req>
    : never;
/** What the client's method for M returns (each message of a stream). */
export type CriResponse<M extends CriMethod> =
  Services[M] extends protoLoader.MethodDefinition<infer _Req, infer _Res, infer _ReqOut, infer ResOut>
    ? Decoded<ResOut>
    : never;

// protobufjs returns 64-bit integers as `long` objects, marked __isLong__.
function isLong(v: object): v is protoLoader.Long {
  return (v as { __isLong__?: unknown }).__isLong__ === true;
}

/** A decoded message -> Decoded: longs to bigint, null (absent sub-message) dropped. */
export function fromWire(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
  if (isLong(v)) return BigInt(v.toString());
  if (Array.isArray(v)) return v.map(fromWire);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = fromWire(x);
  return out;
}

/** Encodable -> what protobufjs' fromObject takes: bigints as decimal strings. */
export function toWire(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map(toWire);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toWire(x)]));
}

export interface Rpc {
  path: string;
  serialize: (req: object) => Buffer;
  deserialize: (buf: Buffer) => unknown;
}

const SERVICES = ['runtime.v1.RuntimeService', 'runtime.v1.ImageService'];
let rpcs: Record<CriMethod, Rpc> | undefined;

/** runtime.proto as the client loads it (tests load it through here too). */
export function loadSchema(): protoLoader.PackageDefinition {
  try {
    return protoLoader.loadSync(SCHEMA_FILE, LOADER_OPTIONS);
  } catch (e) {
    throw new Error(`cannot load the CRI schema ${SCHEMA_FILE} (the build must copy it next to client.js)`, {
      cause: e,
    });
  }
}

/** Every RPC of both services, from runtime.proto (loaded once), converting as described above. */
export function loadRpcs(): Record<CriMethod, Rpc> {
  if (rpcs) return rpcs;
  const def = loadSchema();
  const table: Record<string, Rpc> = {};
  for (const service of SERVICES) {
    for (const [name, md] of Object.entries(def[service] as protoLoader.ServiceDefinition)) {
      table[name] = {
        path: md.path,
        serialize: (req) => md.requestSerialize(toWire(req) as object),
        deserialize: (buf) => fromWire(md.responseDeserialize(buf)),
      };
    }
  }
  return (rpcs = table as Record<CriMethod, Rpc>);
}
