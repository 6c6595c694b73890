// The Herald admin page: live figures from GET /admin/events (Server-Sent Events), a channel view, and two
// actions. Plain script, no framework, no build step. Everything from the server is put on the page with
// textContent, never as HTML (channel names and addresses are client input).
'use strict';

const $ = (id) => document.getElementById(id);
let csrf = '';
let selfId = '';
let shownChannel = '';

function cell(row, text, className) {
  const td = document.createElement('td');
  td.textContent = String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function setFigure(id, value) {
  $(id).textContent = String(value);
}

const round = (n) => (Math.round(n * 10) / 10).toString();
const sumOf = (values) => values.reduce((a, b) => a + b, 0);

function connectionsOf(node) {
  return sumOf(Object.values(node.connections));
}

function render(snapshot) {
  const nodes = snapshot.nodes;
  setFigure('sum-nodes', nodes.length);
  setFigure('sum-connections', sumOf(nodes.map(connectionsOf)));
  setFigure('sum-channels', sumOf(nodes.map((n) => n.channels)));
  setFigure('sum-in', round(sumOf(nodes.map((n) => n.rates.messagesIn))));
  setFigure('sum-out', round(sumOf(nodes.map((n) => n.rates.messagesOut))));
  setFigure('sum-deliveries', round(sumOf(nodes.map((n) => n.rates.deliveries))));
  setFigure('sum-slow', sumOf(nodes.map((n) => n.totals.slow)));
  setFigure('sum-reloads', sumOf(nodes.map((n) => n.totals.reloads)));

  const body = $('nodes').tBodies[0];
  body.replaceChildren();
  for (const n of nodes) {
    const row = body.insertRow();
    row.dataset.node = n.node;
    cell(row, n.node === snapshot.self ? `${n.node} (this node)` : n.node);
    cell(row, `${n.host} (${n.pid})`);
    const shards = n.broker.shards ? ` ${n.broker.shards.ready}/${n.broker.shards.total} shards` : '';
    cell(row, `${n.broker.kind} ${n.broker.ready ? 'ready' : 'down'}${shards}${n.draining ? ', draining' : ''}`, n.broker.ready ? 'ready' : 'down');
    const transports = Object.entries(n.connections).filter(([, c]) => c > 0).sort();
    const conn = cell(row, transports.length === 0 ? 'none' : transports.map(([t, c]) => `${t} ${c}`).join(', '));
    conn.dataset.field = 'connections';
    for (const [t, c] of Object.entries(n.connections)) conn.dataset[`conn${t[0].toUpperCase()}${t.slice(1)}`] = String(c);
    cell(row, n.channels).dataset.field = 'channels';
    cell(row, `${round(n.rates.messagesIn)} (${n.totals.messagesIn})`).dataset.field = 'in';
    cell(row, `${round(n.rates.messagesOut)} (${n.totals.messagesOut})`).dataset.field = 'out';
    cell(row, `${round(n.rates.deliveries)} (${n.totals.deliveries})`).dataset.field = 'deliveries';
    cell(row, n.totals.slow).dataset.field = 'slow';
    cell(row, n.totals.reloads).dataset.field = 'reloads';
  }

  // The busiest channels of the cluster: each node's top channels, summed by name.
  const busiest = new Map();
  for (const n of nodes) {
    for (const b of n.busiest) {
      const seen = busiest.get(b.channel) || { channel: b.channel, messages: 0, subscribers: 0, nodes: 0 };
      seen.messages += b.messages;
      seen.subscribers += b.subscribers;
      seen.nodes += 1;
      busiest.set(b.channel, seen);
    }
  }
  const top = [...busiest.values()].sort((a, b) => b.messages - a.messages).slice(0, 10);
  const busyBody = $('busiest').tBodies[0];
  busyBody.replaceChildren();
  for (const b of top) {
    const row = busyBody.insertRow();
    const link = document.createElement('a');
    link.className = 'channel';
    link.textContent = b.channel;
    link.addEventListener('click', () => showChannel(b.channel));
    row.insertCell().appendChild(link);
    cell(row, b.messages);
    cell(row, b.subscribers);
    cell(row, b.nodes);
  }
  $('busiest-empty').hidden = top.length > 0;
}

function live(on) {
  const el = $('live');
  el.textContent = on ? 'live' : 'reconnecting…';
  el.className = `state ${on ? 'on' : 'off'}`;
}

async function api(path, body) {
  const init = body === undefined
    ? { credentials: 'same-origin' }
    : { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json', 'X-Herald-CSRF': csrf }, body: JSON.stringify(body) };
  const res = await fetch(path, init);
  if (res.status === 401) {
    location.assign('/admin');
    throw new Error('logged out');
  }
  const text = await res.text();
  const json = text ? JSON.parse(text) : {};
  if (!res.ok) throw new Error((json.error && json.error.message) || `HTTP ${res.status}`);
  return json;
}

async function showChannel(name) {
  shownChannel = name;
  $('channel-name').value = name;
  $('channel-problem').hidden = true;
  let view;
  try {
    view = await api(`/admin/api/channel?name=${encodeURIComponent(name)}`);
  } catch (err) {
    $('channel-view').hidden = true;
    $('channel-problem').textContent = String(err.message || err);
    $('channel-problem').hidden = false;
    return;
  }
  $('channel-view').hidden = false;
  const total = sumOf(view.nodes.map((n) => n.total));
  $('channel-total').textContent = `(${total} on ${view.nodes.filter((n) => n.total > 0).length} node(s))`;
  const body = $('subscribers').tBodies[0];
  body.replaceChildren();
  for (const n of view.nodes) {
    for (const s of n.subscribers) {
      const row = body.insertRow();
      row.dataset.client = s.client;
      cell(row, s.client);
      cell(row, s.node === selfId ? `${s.node} (this node)` : s.node);
      cell(row, s.transport);
      cell(row, s.address);
      cell(row, new Date(s.since).toLocaleString());
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'danger';
      button.textContent = 'Disconnect';
      button.addEventListener('click', () => disconnect(s.client, button));
      row.insertCell().appendChild(button);
    }
  }
  $('subscribers-empty').hidden = total > 0;
  $('unanswered').hidden = view.unanswered.length === 0;
  $('unanswered').textContent = `No answer from node(s) ${view.unanswered.join(', ')}: their subscribers are not listed.`;
  const history = $('history');
  history.replaceChildren();
  if (!view.history.enabled) {
    $('history-state').textContent = 'This channel keeps no history.';
  } else {
    $('history-state').textContent = view.history.messages.length === 0
      ? `No messages kept (position ${view.history.position}).`
      : `The latest ${view.history.messages.length} message(s), oldest first (position ${view.history.position}):`;
    for (const m of view.history.messages) {
      const li = document.createElement('li');
      li.textContent = `${m.id ?? ''}  ${new Date(m.ts).toLocaleTimeString()}  ${m.data}`;
      history.appendChild(li);
    }
  }
  showPresence(view.presence);
}

// Presence where the channel keeps it: counts, then the first members (text only: users and info are client input).
function showPresence(p) {
  const table = $('presence-members');
  const body = table.tBodies[0];
  body.replaceChildren();
  table.hidden = true;
  if (!p.enabled) {
    $('presence').textContent = 'This channel keeps no presence (namespace rule presence).';
    return;
  }
  if (p.error) {
    $('presence').textContent = p.error;
    return;
  }
  $('presence').textContent = `${p.clients} client(s), ${p.users} user(s)${p.truncated ? `; the first ${p.members.length} listed` : ''}.`;
  for (const m of p.members) {
    const row = body.insertRow();
    row.dataset.client = m.client;
    cell(row, m.client);
    cell(row, m.user || '(anonymous)');
    cell(row, new Date(m.connectedAt).toLocaleTimeString());
    cell(row, m.info === undefined ? '' : JSON.stringify(m.info));
  }
  table.hidden = p.members.length === 0;
}

async function disconnect(client, button) {
  button.disabled = true;
  try {
    const r = await api('/admin/api/disconnect', { client });
    button.textContent = r.result === 'sent' ? 'Sent to its node' : 'Disconnected';
  } catch (err) {
    button.textContent = `Failed: ${err.message || err}`;
  }
  setTimeout(() => showChannel(shownChannel), 700);
}

function connect() {
  const events = new EventSource('/admin/events');
  events.addEventListener('open', () => live(true));
  events.addEventListener('stats', (e) => render(JSON.parse(e.data)));
  events.addEventListener('logout', () => location.assign('/admin'));
  events.addEventListener('error', () => {
    live(false);
    // 401 (the login expired) closes the source for good: then back to the login form.
    if (events.readyState === EventSource.CLOSED) location.assign('/admin');
  });
}

async function start() {
  const session = await api('/admin/api/session');
  csrf = session.csrf;
  selfId = session.node;
  $('self').textContent = `node ${session.node}`;
  $('channel-form').addEventListener('submit', (e) => {
    e.preventDefault();
    showChannel($('channel-name').value);
  });
  $('publish-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const out = $('publish-result');
    try {
      const r = await api('/admin/api/publish', { channel: shownChannel, data: $('publish-data').value });
      out.textContent = r.id ? `published (id ${r.id})` : 'published';
    } catch (err) {
      out.textContent = `not published: ${err.message || err}`;
    }
    setTimeout(() => showChannel(shownChannel), 300);
  });
  $('logout').addEventListener('click', async () => {
    await fetch('/admin/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-Herald-CSRF': csrf } });
    location.assign('/admin');
  });
  connect();
}

start().catch((err) => {
  $('live').textContent = `error: ${err.message || err}`;
});
