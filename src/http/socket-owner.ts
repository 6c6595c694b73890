/**
 * One set of socket listeners for a connection's whole life, shared by every connection.
 *
 * A connection changes hands (the front reader reads its request, then a stream session owns it). Swapping the
 * listeners at each step would cost memory on every held connection: removing an event's last listener turns the
 * socket's listener table into a slow, larger dictionary, and per-connection closures add up. So the listeners are
 * module-level functions installed once, and they call whoever owns the socket now.
 */
import type { Socket } from 'node:net';
import { reportFault } from '../util/faults.js';

export interface SocketOwner {
  onData(chunk: Buffer): void;
  /** The client half-closed its side. */
  onEnd(): void;
  onError(err: Error): void;
  onClose(): void;
}

const OWNER = Symbol('herald.socketOwner');
type OwnedSocket = Socket & { [OWNER]?: SocketOwner | null };

// The socket's event handlers are a connection's boundary: whatever an owner's parser throws on a client's bytes
// ends this connection alone (counted and logged as a fault), never the process.
function dispatchData(this: OwnedSocket, chunk: Buffer): void {
  try {
    this[OWNER]?.onData(chunk);
  } catch (err) {
    fault(this, 'socket_data', err);
  }
}
function dispatchEnd(this: OwnedSocket): void {
  try {
    this[OWNER]?.onEnd();
  } catch (err) {
    fault(this, 'socket_end', err);
  }
}
function fault(socket: OwnedSocket, where: string, err: unknown): void {
  reportFault('internal', where, err);
  socket.destroy();
}
function dispatchError(this: OwnedSocket, err: Error): void {
  const owner = this[OWNER];
  if (owner) owner.onError(err);
  else this.destroy();
}
function dispatchClose(this: OwnedSocket): void {
  const owner = this[OWNER];
  this[OWNER] = null;
  owner?.onClose();
}

/** True when the shared listeners are on the socket. */
export function isOwned(socket: Socket): boolean {
  return (socket as OwnedSocket)[OWNER] !== undefined;
}

/** Make `owner` the socket's owner, installing the shared listeners the first time. */
export function setOwner(socket: Socket, owner: SocketOwner): void {
  const s = socket as OwnedSocket;
  if (s[OWNER] === undefined) {
    s.on('data', dispatchData);
    s.on('end', dispatchEnd);
    s.on('error', dispatchError);
    s.on('close', dispatchClose);
  }
  s[OWNER] = owner;
}

/** Take the shared listeners off (the socket goes to node:http, which installs its own). */
export function releaseSocket(socket: Socket): void {
  const s = socket as OwnedSocket;
  s.off('data', dispatchData);
  s.off('end', dispatchEnd);
  s.off('error', dispatchError);
  s.off('close', dispatchClose);
  s[OWNER] = undefined;
}
