// The CRI messages under their upstream names, as the client's callers see them: aliases of the
// types generated from runtime.proto (generated/, `npm run gen:cri`), converted as wire.ts says.
// Messages the runtime returns are Decoded (every scalar, list and map present; int64 as bigint;
// an absent sub-message undefined); messages callers build into requests are Encodable (every
// field optional, as in proto3: the runtime rejects what it cannot use). Field docs are
// runtime.proto's comments.
import type { MessageTypeDefinition } from '@grpc/proto-loader';
import type { ProtoGrpcType } from './generated/runtime.js';
import type { ContainerEventType__Output } from './generated/runtime/v1/ContainerEventType.js';
import type { ContainerState__Output } from './generated/runtime/v1/ContainerState.js';
import type { MountPropagation__Output } from './generated/runtime/v1/MountPropagation.js';
import type { NamespaceMode__Output } from './generated/runtime/v1/NamespaceMode.js';
import type { PodSandboxState__Output } from './generated/runtime/v1/PodSandboxState.js';
import type { Protocol__Output } from './generated/runtime/v1/Protocol.js';
import type { Decoded, Encodable } from './wire.js';

type V1 = ProtoGrpcType['runtime']['v1'];
/** Message N as callers send it. */
type Sent<N extends keyof V1> =
  V1[N] extends MessageTypeDefinition<infer In, infer _Out> ? Encodable<In> : never;
/** Message N as the runtime returns it. */
type Received<N extends keyof V1> =
  V1[N] extends MessageTypeDefinition<infer _In, infer Out> ? Decoded<Out> : never;

// Enums: their upstream names (LOADER_OPTIONS.enums is String).
export type NamespaceMode = NamespaceMode__Output;
export type Protocol = Protocol__Output;
export type MountPropagation = MountPropagation__Output;
export type PodSandboxState = PodSandboxState__Output;
export type ContainerState = ContainerState__Output;
export type ContainerEventType = ContainerEventType__Output;

/** T with the fields K required and not null. */
type Requiring<T, K extends keyof T> = Omit<T, K> & { [P in K]-?: NonNullable<T[P]> };

// Built by callers, sent in requests. The runtime refuses a sandbox or container config without
// metadata, or a container config without an image: those are required here.
export type PodSandboxConfig = Requiring<Sent<'PodSandboxConfig'>, 'metadata'>;
export type ContainerConfig = Requiring<Sent<'ContainerConfig'>, 'metadata' | 'image'>;
export type AuthConfig = Sent<'AuthConfig'>;
export type NamespaceOption = Sent<'NamespaceOption'>;
export type LinuxContainerSecurityContext = Sent<'LinuxContainerSecurityContext'>;
export type PortMapping = Sent<'PortMapping'>;
export type DNSConfig = Sent<'DNSConfig'>;
export type KeyValue = Sent<'KeyValue'>;

// Returned by the runtime.
export type ImageSpec = Received<'ImageSpec'>;
export type PodSandboxMetadata = Received<'PodSandboxMetadata'>;
export type ContainerMetadata = Received<'ContainerMetadata'>;
export type Mount = Received<'Mount'>;
export type LinuxContainerResources = Received<'LinuxContainerResources'>;
export type RuntimeCondition = Received<'RuntimeCondition'>;
export type PodSandbox = Received<'PodSandbox'>;
export type PodSandboxStatus = Received<'PodSandboxStatus'>;
export type PodSandboxNetworkStatus = Received<'PodSandboxNetworkStatus'>;
export type Container = Received<'Container'>;
export type ContainerStatus = Received<'ContainerStatus'>;
export type ContainerEventResponse = Received<'ContainerEventResponse'>;
export type ContainerStats = Received<'ContainerStats'>;
export type CpuUsage = Received<'CpuUsage'>;
export type MemoryUsage = Received<'MemoryUsage'>;
export type FilesystemUsage = Received<'FilesystemUsage'>;
export type UInt64Value = Received<'UInt64Value'>;
export type Image = Received<'Image'>;
