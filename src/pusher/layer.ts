/**
 * The Pusher layer (docs/pusher.md): the apps, the WebSocket at `/app/{key}`, the HTTP API at `/apps/{id}/...`,
 * presence channels and webhooks, over the node's hub and broker, so a Pusher channel is the Herald channel of the
 * same name (after the app's `channelPrefix`). server.ts builds it when at least one app is configured.
 */
import type { HeraldConfig } from '../config.js';
import type { HeraldNode } from '../core/node.js';
import type { ControlMessage } from '../core/control-path.js';
import type { ClientAddress } from '../http/client-address.js';
import type { Presence } from '../presence/presence.js';
import type { Logger } from '../util/log.js';
import type { WebhookMetrics } from '../webhooks/metrics.js';
import { PusherApps, type PusherApp } from './apps.js';
import { ClusterChannels } from './cluster-channels.js';
import { PusherHttpApi } from './http-api.js';
import { PusherPresence } from './presence.js';
import { PusherConnection, PusherTransport } from './transport.js';
import { PusherWebhooks } from './webhooks.js';

const TERMINATE_MESSAGE = 'pusher_terminate';

export interface PusherLayerOptions {
  readonly node: HeraldNode;
  readonly config: HeraldConfig;
  readonly presence: Presence;
  readonly webhookMetrics: WebhookMetrics;
  readonly log: Logger;
  readonly clientAddress?: ClientAddress;
  /** The other nodes' ids as this node knows them (server.ts: the stats every node shares). */
  peers(): string[];
  onRefused(code: string): void;
}

export class PusherLayer {
  readonly apps: PusherApps;
  readonly transport: PusherTransport;
  readonly api: PusherHttpApi;
  readonly webhooks: PusherWebhooks;
  private readonly connections = new Set<PusherConnection>();

  constructor(private readonly options: PusherLayerOptions) {
    const { node, config, presence, log } = options;
    this.apps = new PusherApps(config.pusherApps);
    const webhooks = (this.webhooks = new PusherWebhooks(this.apps, node, config, options.webhookMetrics, log));
    const pusherPresence = new PusherPresence(
      node,
      presence,
      {
        memberAdded: (channel, userId) => webhooks.channelEvent('member_added', channel, { user_id: userId }),
        memberRemoved: (channel, userId) => webhooks.channelEvent('member_removed', channel, { user_id: userId }),
      },
      log,
    );
    this.transport = new PusherTransport({
      node,
      config,
      apps: this.apps,
      presence: pusherPresence,
      events: {
        clientEvent: (app, channel, event, dataJson, socketId, userId) =>
          webhooks.send(app, {
            name: 'client_event',
            channel,
            event,
            data: dataJson,
            socket_id: socketId,
            ...(userId !== undefined ? { user_id: userId } : {}),
          }),
        cacheMiss: (app, channel) => webhooks.send(app, { name: 'cache_miss', channel }),
      },
      connections: this.connections,
      onRefused: options.onRefused,
      ...(options.clientAddress ? { clientAddress: options.clientAddress } : {}),
    });
    this.api = new PusherHttpApi({
      node,
      config,
      apps: this.apps,
      presence,
      pusherPresence,
      channels: new ClusterChannels(node, () => options.peers()),
      terminate: (app, userId) => this.terminate(app, userId, true),
    });
    node.control.on(TERMINATE_MESSAGE, (m) => this.remoteTerminate(m));
    const registry = node.metrics.registry;
    registry.gauge('herald_pusher_connections', 'Open Pusher protocol connections on this node, by app.', () =>
      this.apps.all.map((a): [Record<string, string>, number] => [{ app: a.id }, a.connections]),
    );
  }

  /** Close a user's connections (signed in with pusher:signin) on this node and, when asked, on the others. */
  private terminate(app: PusherApp, userId: string, everywhere: boolean): void {
    for (const c of [...this.connections]) if (c.app === app && c.userId === userId) c.session.disconnect('disconnected');
    if (everywhere) {
      this.options.node.control.send(TERMINATE_MESSAGE, { app: app.id, user: userId }).catch((err: unknown) => {
        this.options.log.warn('terminate_connections not sent to the other nodes', { err: String(err) });
      });
    }
  }

  private remoteTerminate(m: ControlMessage): void {
    const { app: id, user } = m.body;
    if (typeof id !== 'string' || typeof user !== 'string' || user.length > 255) return;
    const app = this.apps.withId(id);
    if (app) this.terminate(app, user, false);
  }

  close(withinMs: number): Promise<void> {
    return this.webhooks.close(withinMs);
  }
}
