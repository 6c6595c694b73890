/**
 * Herald's library API. A backend embeds a node (`createHeraldServer`) or only authorizes users for one
 * (`signToken`, `sealChannel`) with the same secret as the nodes.
 */
export { createHeraldServer, HeraldServer, type HeraldServerOptions } from './server.js';
export { resolveConfig, ConfigError, type HeraldConfig, type ConfigSources, type NamespaceRules, type ScopedApiKey } from './config.js';
export { HeraldError, ERROR_TABLE, DISCONNECT_TABLE, type ErrorCode, type DisconnectReason } from './errors.js';
export { signToken, type SignTokenOptions } from './auth/jwt.js';
export { sealChannel, type SealOptions } from './auth/sealed-key.js';
export type { Grant, ChannelGrant } from './auth/grant.js';
export type { Broker, Publication, PublishOptions, HistoryPolicy } from './broker/broker.js';
export { verifyWebhookSignature, webhookSignature } from './webhooks/signature.js';
export { WebhookDispatcher, type WebhookDispatcherOptions, type WebhookEvent } from './webhooks/dispatcher.js';
export type { HeraldWebhookEvent } from './webhooks/herald-webhooks.js';
