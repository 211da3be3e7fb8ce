/**
 * authchat: authenticated chat with SCRAM-SHA-256 login over TCP and TLS.
 *
 * The library exposes the protocol codec, the SCRAM engines, the store, the
 * server and the client. Run as a program, this module is the `authchat` CLI.
 *
 * @example
 * ```ts
 * import { ScramClient, ScramServer, createVerifier } from "./mod.ts";
 *
 * const verifier = await createVerifier("correct horse battery staple", { iterations: 4096 });
 * const server = new ScramServer();
 * const client = new ScramClient({
 *   username: "alice",
 *   password: "correct horse battery staple",
 *   serverMechanisms: server.mechanisms,
 * });
 * const exchange = server.begin(server.parseFirst(client.mechanism, client.first), verifier);
 * const serverFinal = await exchange.finish(await client.final(exchange.serverFirst));
 * client.verify(serverFinal);
 * ```
 *
 * @module
 */

export {
  clientSchemas,
  decodeClientMessage,
  decodeServerMessage,
  encodeMessage,
  PROTOCOL_VERSION,
  serverSchemas,
} from "./lib/codec/messages.ts";
export type {
  ByeCode,
  ClientMessage,
  ClientMessageOf,
  ClientOp,
  ServerMessage,
  ServerMessageOf,
  ServerOp,
} from "./lib/codec/messages.ts";
export type { Infer, Validator } from "./lib/codec/schema.ts";
export type { CbindFlag, ClientFirst } from "./lib/codec/scram_messages.ts";
export { encodeFrame, FrameDecoder, MAX_FRAME_BYTES } from "./lib/codec/frame.ts";
export { describeError, ERROR_CODES, ProtocolError } from "./lib/codec/protocol_error.ts";
export type { ErrorCode, ProtocolErrorDetails } from "./lib/codec/protocol_error.ts";
export { createVerifier, formatVerifier, parseVerifier } from "./lib/crypto/scram_verifier.ts";
export type { ScramVerifier } from "./lib/crypto/scram_verifier.ts";
export { fingerprint } from "./lib/crypto/fingerprint.ts";
export { generateServerIdentity, identityPaths, loadServerIdentity } from "./lib/crypto/server_identity.ts";
export type {
  GenerateOptions,
  IdentityPaths,
  ServerIdentity,
  WrittenKey,
} from "./lib/crypto/server_identity.ts";
export { mockVerifier, ScramServer } from "./lib/auth/scram_server.ts";
export type { ScramServerExchange } from "./lib/auth/scram_server.ts";
export { ScramClient } from "./lib/auth/scram_client.ts";
export { checkPassword } from "./lib/auth/password_policy.ts";
export type { PolicyOptions } from "./lib/auth/password_policy.ts";
export { prepareNewUsername, prepareUsername } from "./lib/auth/username.ts";
export type { PreparedName } from "./lib/auth/username.ts";
export {
  enforceUsernameCaseMapped,
  enforceUsernameCasePreserved,
  PrecisError,
} from "./lib/auth/precis_username.ts";
export type { PrecisRefusal } from "./lib/auth/precis_username.ts";
export { nameSkeletons, skeleton } from "./lib/auth/confusable_skeleton.ts";
export type { NameSkeletons } from "./lib/auth/confusable_skeleton.ts";
export { RateLimiter } from "./lib/auth/rate_limiter.ts";
export type { AttemptOptions, RateLimiterOptions } from "./lib/auth/rate_limiter.ts";
export type { GateLimits } from "./lib/auth/failure_gate.ts";
export { TokenBucket } from "./lib/auth/token_bucket.ts";
export type { TokenBucketOptions } from "./lib/auth/token_bucket.ts";
export { LoginBudget } from "./lib/auth/login_budget.ts";
export type { LoginBudgetOptions, LoginOptions, LoginRefusal } from "./lib/auth/login_budget.ts";
export { Logger } from "./lib/server/logger.ts";
export type {
  LogFields,
  LogFormat,
  LoggerOptions,
  LogLevel,
  LogObserver,
  LogRateLimit,
} from "./lib/server/logger.ts";
export type { DescriptorSource, FreeDescriptors } from "./lib/server/descriptor_limit.ts";
export type { CoalescerClock } from "./lib/server/presence_coalescer.ts";
export { SqliteUserStore } from "./lib/store/sqlite_user_store.ts";
export { PostgresUserStore } from "./lib/store/postgres_user_store.ts";
export type { PostgresStoreOptions } from "./lib/store/postgres_user_store.ts";
export { openUserStore } from "./lib/store/open_user_store.ts";
export type { OpenUserStoreOptions } from "./lib/store/open_user_store.ts";
export { DatabaseUnavailableError } from "./lib/store/database_unavailable.ts";
export type {
  AccountVerifier,
  Credentials,
  IdentityRecord,
  LoginRecord,
  NewUser,
  UserRecord,
  UserStore,
} from "./lib/store/user_store.ts";
export { AuthchatServer } from "./lib/server/authchat_server.ts";
export type { AuthchatServerOptions, ListeningAddresses } from "./lib/server/authchat_server.ts";
export type { RecheckResult } from "./lib/server/session_recheck.ts";
export { LocalAbuseLimits, NO_OTHER_NODES } from "./lib/server/shared_parts.ts";
export type {
  AbuseLimits,
  LocalAbuseLimitsParts,
  LoginGate,
  ProofRefusal,
  SessionDirectory,
  SessionsHere,
  SharedParts,
} from "./lib/server/shared_parts.ts";
export {
  limitOptions,
  localLimitParts,
  localSharedParts,
  PRESENCE_LINGER_MS,
} from "./lib/server/local_parts.ts";
export type { LimitOptions, LimitSettings } from "./lib/server/local_parts.ts";
export { LocalPresence } from "./lib/server/presence.ts";
export type {
  LocalPresenceOptions,
  OnlineUser,
  PresenceDirectory,
  PresenceMember,
} from "./lib/server/presence.ts";
export type {
  Outgoing,
  Rendezvous,
  RendezvousOptions,
  RendezvousStats,
  Source,
} from "./lib/server/udp_rendezvous.ts";
export {
  FINISH_DROP_REASONS,
  INIT_DROP_REASONS,
  RECORD_DROP_REASONS,
  SESSION_END_REASONS,
} from "./lib/server/udp_session_stats.ts";
export type {
  FinishDrop,
  InitDropReason,
  RecordDrop,
  SessionEnd,
  UdpSessionStats,
} from "./lib/server/udp_session_stats.ts";
export type { RetryCause } from "./lib/server/udp_admission.ts";
export { SINGLE_NODE_RELAY } from "./lib/server/relay_routing.ts";
export type {
  ForwardedDatagram,
  RelayHandlers,
  RelayRouting,
  RoutedEndpoint,
} from "./lib/server/relay_routing.ts";
export type { SessionRendezvous, TransportName, UdpEndpoint } from "./lib/server/session_context.ts";
export type {
  EndedSince,
  Refusal,
  RegisteredSession,
  SessionRegistry,
  SessionRegistryOptions,
} from "./lib/server/session_registry.ts";
export { ConfigError, loadServerConfig } from "./lib/server/server_config.ts";
export type { ConfigSources, ServerConfig } from "./lib/server/server_config.ts";
export { Session } from "./lib/server/session.ts";
export { AuthchatClient } from "./lib/client/authchat_client.ts";
export type {
  AccessInfo,
  ChatCredentials,
  HelloInfo,
  ListedUser,
  LoginState,
  PeerInfo,
} from "./lib/client/authchat_client.ts";
export type {
  ByeEvent,
  ClientEvent,
  CommandResult,
  FailureEvent,
  MessageEvent,
  NoticeEvent,
  PresenceEvent,
  ReplyEvent,
} from "./lib/client/client_event.ts";
export type { Identity } from "./lib/crypto/identity_key.ts";
export { KnownHosts, TrustError } from "./lib/client/known_hosts.ts";
export type { KeyKind } from "./lib/client/known_hosts.ts";
export { ConnectError } from "./lib/client/connect_error.ts";
export type { ConnectFailure } from "./lib/client/connect_error.ts";

if (import.meta.main) {
  const { main } = await import("./cmd/main.ts");
  Deno.exit(await main(Deno.args));
}
