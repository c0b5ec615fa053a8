// Checks one point of AMQP 1.0 behaviour of the broker with rhea, for the interop tests.
// Usage: node rhea_spec.js --url amqp://HOST:PORT --case NAME, NAME being one of shared-name, drain,
// large-value, selector, durable-terminus, browse, idle-offer, request-response or
// durable-subscription. (rhea has no transaction API: Proton checks transactions.)
// Prints "ok CASE ..." and exits 0 when the broker behaved as the case expects; otherwise prints
// the reason on stderr and exits 1. A case gives up after 12 s.
'use strict';

const crypto = require('crypto');
const rhea = require('rhea');

const QUEUE = 'orders'; // the queue of tests/fixtures/interop/space.yaml
const CASES = ['shared-name', 'drain', 'large-value', 'selector', 'durable-terminus', 'browse',
  'idle-offer', 'request-response', 'durable-subscription'];
const TOPIC = 'events'; // the topic of tests/fixtures/interop/space.yaml
const LARGE = 300000;

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
if (!args.url || !CASES.includes(args.case)) {
  console.error(`usage: node rhea_spec.js --url amqp://HOST:PORT --case ${CASES.join('|')}`);
  process.exit(1);
}

const tag = crypto.randomBytes(16).toString('hex');
let status = 'the connection did not open';
let refusal = null; // for the refusal cases: what the error description must mention
let skipped = 0; // messages left on the queue by earlier runs
let finished = false;
const timer = setTimeout(() => fail(`timed out after 12 s: ${status}`), 12000);

function fail(reason) {
  if (finished) return;
  finished = true;
  console.error(reason);
  process.exit(1);
}

function pass(text) {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  console.log(`ok ${args.case}: ${text}`);
  // Close cleanly, so that accepts reach the broker, but do not wait on the broker for long.
  connection.close();
  setTimeout(() => process.exit(0), 2000);
}

function describe(error) {
  return error ? `${error.condition}: ${error.description}` : 'no error';
}

const url = new URL(args.url);
const container = rhea.create_container({ id: `rhea-spec-${tag.slice(0, 8)}` });
container.on('connection_error', (context) => fail(`the broker closed the connection: ${describe(context.connection.error)}`));
container.on('connection_close', () => (finished ? process.exit(0) : fail(`the broker closed the connection (${status})`)));
container.on('disconnected', (context) => (finished ? process.exit(0) : fail(`disconnected: ${context.error || 'without an AMQP error'} (${status})`)));
container.on('protocol_error', (error) => fail(`protocol error: ${error}`));
container.on('error', (error) => fail(`error: ${error}`));

// Link events that a case does not handle itself reach the container.
function onLinkError(context) {
  const link = context.receiver || context.sender;
  const error = link.error;
  if (refusal === null) fail(`link ${link.name} closed by the broker: ${describe(error)}`);
  else if (error.condition !== 'amqp:not-implemented') fail(`link ${link.name} refused with ${describe(error)}, expected amqp:not-implemented`);
  else if (!String(error.description || '').toLowerCase().includes(refusal)) fail(`link ${link.name} refused without naming the ${refusal}: ${describe(error)}`);
  else pass(`link ${link.name} refused with ${describe(error)}`);
}
function onLinkClose(context) {
  const link = context.receiver || context.sender;
  if (!link.error) fail(`link ${link.name} closed by the broker without an error (${status})`);
}
function onLinkOpen(context) {
  const link = context.receiver || context.sender;
  status = `link ${link.name} attached, remote source ${JSON.stringify(link.source)}`;
}
container.on('receiver_error', onLinkError);
container.on('sender_error', onLinkError);
container.on('receiver_close', onLinkClose);
container.on('sender_close', onLinkClose);
container.on('receiver_open', onLinkOpen);
container.on('sender_open', onLinkOpen);

const connection = container.connect({ host: url.hostname, port: Number(url.port), reconnect: false });

// Sends the bodies in order; calls then() once the broker accepted them all.
function sendAll(where, name, bodies, then) {
  let sent = 0;
  let accepted = 0;
  const sender = where.open_sender({ target: QUEUE, name });
  sender.on('sendable', () => {
    while (sender.sendable() && sent < bodies.length) sender.send({ body: bodies[sent++] });
  });
  sender.on('accepted', () => {
    accepted += 1;
    if (accepted === bodies.length && then) then();
  });
  sender.on('rejected', (context) => fail(`the broker rejected a message: ${JSON.stringify(context.delivery.remote_state)}`));
  return sender;
}

// A receiver of the queue that takes one message, expected, skipping those left by earlier runs.
function receiveOne(where, name, expected) {
  const receiver = where.open_receiver({ source: QUEUE, name, credit_window: 0 });
  receiver.add_credit(1);
  receiver.on('message', (context) => {
    const body = context.message.body;
    if (body === expected) pass(`sent and received one message of ${body.length} characters (${skipped} old messages skipped)`);
    else if (typeof body === 'string' && body.startsWith(tag)) fail(`the message came back altered: ${body.length} characters, sent ${expected.length}`);
    else {
      skipped += 1;
      receiver.add_credit(1);
    }
  });
  return receiver;
}

const cases = {
  'shared-name': () => {
    const session = connection.create_session();
    session.begin();
    // rhea keeps a session's links in a map by name: a second link of the same name replaces the
    // first there (the first then sends no more attach or flow). So the sender attaches and sends
    // first, and the receiver attaches once the message is accepted; the sender stays attached.
    const body = `${tag} shared-name`;
    sendAll(session, 'shared-link', [body], () => {
      status = 'sender attached and message accepted, waiting for the receiver';
      receiveOne(session, 'shared-link', body);
    });
    status = 'waiting for the sender';
  },

  drain: () => {
    // Empty the queue first (a drain with a lot of credit), then send 3, then drain with 10.
    const bodies = [0, 1, 2].map((i) => `${tag} drain ${i}`);
    const purge = connection.open_receiver({ source: QUEUE, name: 'drain-purge', credit_window: 0 });
    purge.on('message', () => { skipped += 1; });
    purge.on('receiver_drained', () => purge.close());
    purge.on('receiver_close', () => {
      status = `purged ${skipped}, sending 3`;
      sendAll(connection, 'drain-sender', bodies, () => {
        status = 'sent 3, waiting for the drain to complete';
        const received = [];
        const receiver = connection.open_receiver({ source: QUEUE, name: 'drain-receiver', credit_window: 0 });
        receiver.on('message', (context) => {
          received.push(context.message.body);
          status = `received ${received.length}, drain not completed`;
        });
        receiver.on('receiver_drained', () => {
          if (JSON.stringify(received) !== JSON.stringify(bodies)) fail(`the drain completed after ${JSON.stringify(received)}, expected ${JSON.stringify(bodies)}`);
          else if (receiver.credit !== 0) fail(`the drain completed with credit ${receiver.credit}`);
          else pass(`3 messages, then the drain completed with credit 0 (${skipped} old messages purged)`);
        });
        receiver.drain = true;
        receiver.add_credit(10);
      });
    });
    purge.drain = true;
    purge.add_credit(1000);
    status = "waiting for the purge's drain to complete";
  },

  'large-value': () => {
    const pattern = 'abcdéfghij'; // a two-byte character, so that some frame boundary splits one
    const body = (tag + pattern.repeat(LARGE / pattern.length)).slice(0, LARGE);
    sendAll(connection, 'large-sender', [body]);
    receiveOne(connection, 'large-receiver', body);
    status = 'waiting for the large message';
  },

  selector: () => {
    // A red and a green message, then a receiver that selects green: it gets the green one, and
    // the red one stays for a plain receiver.
    const sender = connection.open_sender({ target: QUEUE, name: 'selector-sender' });
    let sent = 0;
    let accepted = 0;
    const colours = ['red', 'green'];
    sender.on('sendable', () => {
      while (sender.sendable() && sent < colours.length) {
        const colour = colours[sent++];
        sender.send({ body: `${tag} ${colour}`, application_properties: { colour } });
      }
    });
    sender.on('accepted', () => {
      accepted += 1;
      if (accepted < colours.length) return;
      const filter = rhea.filter.selector("colour = 'green'");
      const green = connection.open_receiver({ source: { address: QUEUE, filter }, name: 'selector-receiver' });
      green.on('receiver_open', () => {
        const remote = green.remote.attach && green.remote.attach.source;
        if (!remote || !remote.filter) fail(`the reply names no filter in force: ${JSON.stringify(remote)}`);
        else status = 'selector in force, waiting for the green message';
      });
      green.on('message', (context) => {
        if (context.message.body !== `${tag} green`) {
          fail(`the selecting receiver got ${JSON.stringify(context.message.body)}`);
          return;
        }
        status = 'green received, waiting for the red one on a plain receiver';
        const plain = connection.open_receiver({ source: QUEUE, name: 'plain-receiver' });
        plain.on('message', (ctx) => {
          if (ctx.message.body === `${tag} red`) pass('the selector took the green message and left the red one for a plain receiver');
          else fail(`the plain receiver got ${JSON.stringify(ctx.message.body)}`);
        });
      });
    });
    status = 'sending a red and a green message';
  },

  'durable-terminus': () => {
    const source = { address: QUEUE, durable: 2, expiry_policy: 'never' };
    const receiver = connection.open_receiver({ source, name: 'durable-receiver', credit_window: 0 });
    receiver.on('receiver_open', () => {
      const remote = receiver.source;
      const said = remote ? `remote source address=${remote.address} durable=${remote.durable} expiry-policy=${remote.expiry_policy}` : 'no remote source';
      if (!remote || remote.address !== QUEUE) fail(`the broker did not name the queue as the source: ${said}`);
      else if (remote.durable === 0 && remote.expiry_policy !== 'never') pass(said);
      else fail(`the broker claims a terminus it does not keep: ${said}`);
    });
    status = 'waiting for the attach';
  },

  browse: () => {
    // Empty the queue first (as drain does), send 3, browse them with a copy link, then consume
    // them: browsing must neither remove nor lock them.
    const bodies = [0, 1, 2].map((i) => `${tag} browse ${i}`);
    const same = (got) => JSON.stringify(got) === JSON.stringify(bodies);
    const consume = () => {
      const received = [];
      const consumer = connection.open_receiver({ source: QUEUE, name: 'browse-consumer', credit_window: 0 });
      consumer.on('message', (context) => {
        received.push(context.message.body); // accepted by rhea's autoaccept
        status = `browsed 3, consumed ${received.length} of 3`;
        if (received.length < bodies.length) return;
        if (!same(received)) fail(`after browsing, the consumer got ${JSON.stringify(received)}, expected ${JSON.stringify(bodies)}`);
        else pass(`a copy link (distribution-mode copy) saw 3 messages in order, then a consumer got the same 3 (${skipped} old messages purged)`);
      });
      consumer.add_credit(bodies.length);
      status = "browser closed, waiting for the consumer's 3 messages";
    };
    const browse = () => {
      const browsed = [];
      // No autoaccept: deliveries to a browser may come settled; only unsettled ones are accepted.
      const browser = connection.open_receiver({ source: { address: QUEUE, distribution_mode: 'copy' }, name: 'browse-receiver', credit_window: 0, autoaccept: false });
      browser.on('receiver_open', () => {
        const remote = browser.remote.attach && browser.remote.attach.source;
        const mode = remote ? remote.distribution_mode : undefined;
        if (mode !== 'copy') fail(`the browser's remote source has distribution-mode ${mode}, expected copy: ${remote ? JSON.stringify(remote) : 'no remote source'}`);
        else status = 'browser attached with distribution-mode copy, waiting for 3 messages';
      });
      browser.on('message', (context) => {
        browsed.push(context.message.body);
        if (!context.delivery.remote_settled) context.delivery.accept();
        status = `browsed ${browsed.length} of 3`;
        if (browsed.length < bodies.length) return;
        if (!same(browsed)) fail(`the browser got ${JSON.stringify(browsed)}, expected ${JSON.stringify(bodies)}`);
        else {
          status = "browsed 3, waiting for the browser's detach";
          browser.close();
        }
      });
      browser.on('receiver_close', () => {
        if (browser.error) fail(`link browse-receiver closed by the broker: ${describe(browser.error)}`);
        else if (browsed.length < bodies.length) fail(`link browse-receiver closed by the broker without an error (${status})`);
        else consume();
      });
      browser.add_credit(bodies.length);
      status = "sent 3, waiting for the browser's attach";
    };
    const purge = connection.open_receiver({ source: QUEUE, name: 'browse-purge', credit_window: 0 });
    purge.on('message', () => { skipped += 1; });
    purge.on('receiver_drained', () => purge.close());
    purge.on('receiver_close', () => {
      status = `purged ${skipped}, sending 3`;
      sendAll(connection, 'browse-sender', bodies, browse);
    });
    purge.drain = true;
    purge.add_credit(1000);
    status = "waiting for the purge's drain to complete";
  },

  'idle-offer': () => {
    connection.on('connection_open', () => {
      const offered = connection.remote.open.idle_time_out;
      if (offered > 0) pass(`the broker offers an idle-time-out of ${offered} ms`);
      else fail("the broker's open carries no idle-time-out");
    });
    status = "waiting for the broker's open";
  }
};

cases['request-response'] = () => {
  // rhea's own client/server examples in one process: the server consumes requests from the queue
  // and answers each through an anonymous sender to its reply_to; the client's replies come on a
  // dynamic receiver, a temporary queue the broker names.
  const request = `${tag} request`;
  const relay = connection.open_sender({ target: {}, name: 'server-replies' });
  relay.on('rejected', (context) => {
    // Requests left by earlier runs name temporary queues long gone: those replies are refused.
    if (context.delivery.tag_of_this_run) fail(`the reply was rejected: ${JSON.stringify(context.delivery.remote_state)}`);
  });
  const server = connection.open_receiver({ source: QUEUE, name: 'server-requests' });
  server.on('message', (context) => {
    const message = context.message;
    if (!message.reply_to) return;
    const delivery = relay.send({ to: message.reply_to, correlation_id: message.message_id, body: String(message.body).toUpperCase() });
    if (message.body === request) delivery.tag_of_this_run = true;
  });
  const replies = connection.open_receiver({ source: { dynamic: true }, name: 'client-replies' });
  replies.on('receiver_open', () => {
    const remote = replies.source;
    if (!remote || !remote.address || !remote.dynamic) {
      fail(`the dynamic receiver's source names no temporary address: ${JSON.stringify(remote)}`);
      return;
    }
    status = `temporary queue ${remote.address}, sending the request`;
    const client = connection.open_sender({ target: QUEUE, name: 'client-requests' });
    client.once('sendable', () => client.send({ message_id: tag, reply_to: remote.address, body: request }));
  });
  replies.on('message', (context) => {
    const reply = context.message;
    if (reply.correlation_id !== tag) fail(`a reply with correlation-id ${reply.correlation_id}, expected ${tag}`);
    else if (reply.body !== request.toUpperCase()) fail(`the reply was ${JSON.stringify(reply.body)}`);
    else pass(`the request went through the queue, its reply through the anonymous relay to temporary queue ${replies.source.address}`);
  });
  status = 'waiting for the temporary queue';
};

cases['durable-subscription'] = () => {
  // rhea's own durable_subscription example: subscribe by container id and link name with a
  // durable source, detach (not close), publish, subscribe again: the message is there.
  const body = `${tag} durable-subscription`;
  const source = { address: TOPIC, durable: 2, expiry_policy: 'never' };
  const first = connection.open_receiver({ name: 'spec-subscription', source });
  first.on('receiver_open', () => {
    const remote = first.source;
    // Kept as configuration (1): unsettled deliveries return to it when the link goes.
    if (!remote || remote.durable !== 1 || remote.expiry_policy !== 'never') {
      fail(`the subscription is not kept as asked: ${JSON.stringify(remote)}`);
      return;
    }
    status = 'subscribed, detaching';
    first.detach();
  });
  first.on('receiver_close', () => {
    status = 'detached, publishing';
    const sender = connection.open_sender({ target: TOPIC, name: 'durable-publisher' });
    sender.once('sendable', () => sender.send({ body }));
    sender.on('accepted', () => {
      status = 'published while away, subscribing again';
      const again = connection.open_receiver({ name: 'spec-subscription', source });
      again.on('message', (context) => {
        if (context.message.body === body) pass('a message published while the durable subscriber was detached was kept for it');
        else fail(`the subscription gave ${JSON.stringify(context.message.body)}`);
      });
    });
  });
  status = "waiting for the subscription's attach";
};

cases[args.case]();
