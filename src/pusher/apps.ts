/**
 * The configured Pusher apps (config.ts `pusherApps`, checked there), found by key (WebSocket) or id (HTTP API), and
 * the mapping between a Pusher channel name and the Herald channel it is: `channelPrefix` + name.
 */
import type { PusherAppConfig } from '../config.js';
import { validChannelName } from './protocol.js';

export class PusherApp {
  /** Pusher connections this app holds on this node (its `maxConnections`). */
  connections = 0;

  constructor(readonly config: PusherAppConfig) {}

  get id(): string {
    return this.config.id;
  }

  get key(): string {
    return this.config.key;
  }

  get secret(): string {
    return this.config.secret;
  }

  /** The Herald channel a Pusher channel of this app is. */
  heraldChannel(name: string): string {
    return this.config.channelPrefix + name;
  }

  /** The Pusher channel name a Herald channel is for this app, or undefined when it is not one of the app's. */
  pusherChannel(channel: string): string | undefined {
    const prefix = this.config.channelPrefix;
    if (!channel.startsWith(prefix)) return undefined;
    const name = channel.slice(prefix.length);
    return validChannelName(name) ? name : undefined;
  }
}

export class PusherApps {
  private readonly byKey = new Map<string, PusherApp>();
  private readonly byId = new Map<string, PusherApp>();
  readonly all: readonly PusherApp[];

  constructor(configs: readonly PusherAppConfig[]) {
    this.all = configs.map((c) => new PusherApp(c));
    for (const app of this.all) {
      this.byKey.set(app.key, app);
      this.byId.set(app.id, app);
    }
  }

  withKey(key: string): PusherApp | undefined {
    return this.byKey.get(key);
  }

  withId(id: string): PusherApp | undefined {
    return this.byId.get(id);
  }
}
