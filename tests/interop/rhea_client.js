// Sends messages to an address and receives them back with rhea, for the interop tests.
// Prints "ok N" and exits 0 when every message came back in order; exits 1 with the reason
// otherwise.
'use strict';

const fs = require('fs');
const rhea = require('rhea');

function parse(argv) {
  const args = { count: 10, topic: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--topic') args.topic = true;
    else args[flag.replace(/^--/, '')] = argv[++i];
  }
  args.count = Number(args.count);
  return args;
}

const args = parse(process.argv.slice(2));
const url = new URL(args.url);
const bodies = Array.from({ length: args.count }, (_, i) => `message-${i}`);
const received = [];
let sent = 0;

const timer = setTimeout(() => fail(`timed out with ${received.length} of ${args.count} received`), 15000);

function fail(reason) {
  console.error(reason);
  process.exit(1);
}

const container = rhea.create_container({ id: 'rhea-interop' });
const options = { host: url.hostname, port: Number(url.port), reconnect: false };
if (url.protocol === 'amqps:') {
  options.transport = 'tls';
  options.servername = url.hostname;
  if (args.ca) options.ca = [fs.readFileSync(args.ca)];
} else if (url.protocol === 'wss:') {
  // AMQP over WebSocket (the `amqp` subprotocol), with the ws package as rhea's README shows.
  const tls = args.ca ? { ca: [fs.readFileSync(args.ca)] } : {};
  options.connection_details = container.websocket_connect(require('ws'))(args.url, ['amqp'], tls);
}
if (args.user) {
  options.username = args.user;
  options.password = args.password;
}

container.on('error', (context) => fail(`error: ${context.error}`));
container.on('connection_error', (context) => fail(`connection error: ${context.connection.error}`));
container.on('disconnected', (context) => {
  if (received.length < args.count) fail(`disconnected: ${context.error || 'no error'}`);
});
container.on('sendable', (context) => {
  while (context.sender.sendable() && sent < bodies.length) {
    context.sender.send({ body: bodies[sent++] });
  }
});
container.on('message', (context) => {
  received.push(context.message.body);
  context.delivery.accept();
  if (received.length === args.count) {
    clearTimeout(timer);
    if (JSON.stringify(received) !== JSON.stringify(bodies)) fail(`received ${received}, sent ${bodies}`);
    // Close cleanly, so that the accepts reach the broker before the process ends.
    context.connection.close();
  }
});
container.on('connection_close', () => {
  if (received.length === args.count) {
    console.log(`ok ${received.length}`);
    process.exit(0);
  }
});

const connection = container.connect(options);
if (args.topic) {
  const receiver = connection.open_receiver({ source: args.address, autoaccept: false });
  receiver.once('receiver_open', () => connection.open_sender(args.address));
} else {
  // A queue keeps the messages: receive them once the broker has accepted them all.
  let accepted = 0;
  const sender = connection.open_sender(args.address);
  sender.on('accepted', () => {
    accepted += 1;
    if (accepted === bodies.length) connection.open_receiver({ source: args.address, autoaccept: false });
  });
  sender.on('rejected', (context) => fail(`rejected: ${JSON.stringify(context.delivery.remote_state)}`));
}
