#!/usr/bin/python3
"""Checks one point of AMQP 1.0 behaviour of the broker with Qpid Proton, for the interop tests.

Usage: proton_spec.py --url amqp://HOST:PORT --case NAME, NAME being one of shared-name, drain,
large-value, selector, durable-terminus, browse, idle-offer, transaction or durable-subscription.
Prints "ok CASE ..." and exits 0 when the broker behaved as the case expects; otherwise prints the
reason on stderr and exits 1. A case gives up after 12 s; an alarm ends the process at 14 s.
"""

import argparse
import os
import signal
import sys
import uuid

from proton import Message, Terminus
from proton.handlers import MessagingHandler, TransactionHandler
from proton.reactor import Container, Copy, DurableSubscription, Selector

QUEUE = "orders"  # the queue of tests/fixtures/interop/space.yaml
CASES = ["shared-name", "drain", "large-value", "selector", "durable-terminus", "browse",
         "idle-offer", "transaction", "durable-subscription"]
TOPIC = "events"  # the topic of tests/fixtures/interop/space.yaml
TIMEOUT = 12
LARGE = 300_000
DURABILITY = {Terminus.NONDURABLE: "none", Terminus.CONFIGURATION: "configuration",
              Terminus.DELIVERIES: "unsettled-state"}
EXPIRY = {Terminus.EXPIRE_WITH_LINK: "link-detach", Terminus.EXPIRE_WITH_SESSION: "session-end",
          Terminus.EXPIRE_WITH_CONNECTION: "connection-close", Terminus.EXPIRE_NEVER: "never"}


class Timeout:
    def __init__(self, check):
        self.check = check

    def on_timer_task(self, event):
        self.check.finish(False, f"timed out after {TIMEOUT} s: {self.check.status}")


class Check(MessagingHandler, TransactionHandler):
    """Runs one case. No automatic credit: each case grants what it needs."""

    def __init__(self, url, case):
        super().__init__(prefetch=0)
        self.url, self.case = url, case
        self.result = None  # (passed, text)
        self.status = "the connection did not open"
        self.tag = uuid.uuid4().hex
        self.bodies = []  # what the sender sends, in order
        self.sent = 0
        self.accepted = 0
        self.received = []
        self.skipped = 0  # messages left on the queue by earlier runs
        self.refusal = None  # for the refusal cases: what the error description must mention
        self.conn = None

    def finish(self, passed, text):
        if self.result is None:
            self.result = (passed, text)
            if not passed:
                os._exit(report(self))  # no need to close politely, nor to wait on the broker
            self.timer.cancel()
            if self.conn is not None:
                self.conn.close()

    def on_start(self, event):
        self.container = event.container
        self.timer = event.container.schedule(TIMEOUT, Timeout(self))
        self.conn = event.container.connect(self.url)
        getattr(self, "start_" + self.case.replace("-", "_"))()

    # The cases.

    def start_shared_name(self):
        session = self.conn.session()
        session.open()
        self.bodies = [f"shared-name {self.tag}"]
        receiver = self.container.create_receiver(session, QUEUE, name="shared-link")
        receiver.flow(1)
        self.container.create_sender(session, QUEUE, name="shared-link")
        self.status = "waiting for the attaches"

    def start_drain(self):
        # Empty the queue first (a drain with a lot of credit), then send 3, then drain with 10.
        self.bodies = [f"drain {self.tag} {i}" for i in range(3)]
        self.container.create_receiver(self.conn, QUEUE, name="drain-purge").drain(1000)
        self.status = "waiting for the purge's drain to complete"

    def start_large_value(self):
        pattern = "abcdéfghij"  # a two-byte character, so that some frame boundary splits one
        self.bodies = [(self.tag + pattern * (LARGE // len(pattern)))[:LARGE]]
        self.container.create_sender(self.conn, QUEUE, name="large-sender")
        self.container.create_receiver(self.conn, QUEUE, name="large-receiver").flow(1)
        self.status = "waiting for the large message"

    def start_selector(self):
        # A red and a green message, then a receiver that selects green: it gets the green one,
        # and the red one stays for a plain receiver.
        self.bodies = [f"selector {self.tag} red", f"selector {self.tag} green"]
        self.container.create_sender(self.conn, QUEUE, name="selector-sender")
        self.status = "sending a red and a green message"

    def start_durable_terminus(self):
        self.container.create_receiver(self.conn, QUEUE, name="durable-receiver",
                                       options=DurableSubscription())
        self.status = "waiting for the attach"

    def start_browse(self):
        # Empty the queue first (as drain does), send 3, browse them with a copy link, then
        # consume them: browsing must neither remove nor lock them.
        self.bodies = [f"browse {self.tag} {i}" for i in range(3)]
        self.browsed = []
        self.container.create_receiver(self.conn, QUEUE, name="browse-purge").drain(1000)
        self.status = "waiting for the purge's drain to complete"

    def start_durable_subscription(self):
        # Subscribe durably, detach (not close), publish, subscribe again by the same name: the
        # message published while away is there.
        self.bodies = [f"durable-subscription {self.tag}"]
        self.resubscribed = False
        self.container.create_receiver(self.conn, TOPIC, name="spec-subscription",
                                       options=DurableSubscription())
        self.status = "waiting for the subscription's attach"

    def start_idle_offer(self):
        self.status = "waiting for the broker's open"

    def start_transaction(self):
        # Two messages sent in a transaction rolled back, then one in a transaction committed:
        # only the committed one is there to receive.
        self.bodies = []
        self.txn_sender = self.container.create_sender(self.conn, QUEUE, name="txn-sender")
        self.txn_round = 0
        self.container.declare_transaction(self.conn, handler=self)
        self.status = "declaring the first transaction"

    # Events.

    def on_connection_opened(self, event):
        if self.case == "idle-offer":
            offered = event.transport.remote_idle_timeout
            if offered > 0:
                self.finish(True, f"ok idle-offer: the broker offers an idle-time-out of {offered} s")
            else:
                self.finish(False, "the broker's open carries no idle-time-out")

    def on_link_opened(self, event):
        link = event.link
        source = link.remote_source
        self.status = (f"link {link.name} attached, remote source address={source.address!r} "
                       f"durable={DURABILITY.get(source.durability, source.durability)} "
                       f"expiry-policy={EXPIRY.get(source.expiry_policy, source.expiry_policy)}")
        if self.case == "durable-terminus":
            if source.type != Terminus.SOURCE or source.address != QUEUE:
                self.finish(False, f"the broker did not name the queue as the source: {self.status}")
            elif source.durability == Terminus.NONDURABLE and source.expiry_policy != Terminus.EXPIRE_NEVER:
                self.finish(True, f"ok durable-terminus: {self.status}")
            else:
                self.finish(False, f"the broker claims a terminus it does not keep: {self.status}")
        elif self.case == "durable-subscription" and link.is_receiver and not self.resubscribed:
            # Kept as configuration: unsettled deliveries return to it when the link goes.
            if (source.durability, source.expiry_policy) != (Terminus.CONFIGURATION, Terminus.EXPIRE_NEVER):
                self.finish(False, f"the subscription is not kept as asked: {self.status}")
            else:
                link.detach()
                self.status = "subscribed, detaching"
        elif self.case == "browse" and link.name == "browse-receiver":
            if source.distribution_mode != Terminus.DIST_MODE_COPY:
                self.finish(False, f"the browser's remote source has distribution-mode "
                                   f"{source.distribution_mode}, expected copy "
                                   f"({Terminus.DIST_MODE_COPY}): {self.status}")
            else:
                self.status = "browser attached with distribution-mode copy, waiting for 3 messages"

    def on_sendable(self, event):
        while event.sender.credit and self.sent < len(self.bodies):
            body = self.bodies[self.sent]
            event.sender.send(Message(body=body, properties={"colour": body.rsplit(" ", 1)[-1]}))
            self.sent += 1

    def on_accepted(self, event):
        self.accepted += 1
        if self.case == "drain" and self.accepted == len(self.bodies):
            self.container.create_receiver(self.conn, QUEUE, name="drain-receiver").drain(10)
            self.status = "sent 3, waiting for the drain to complete"
        elif self.case == "selector" and self.accepted == len(self.bodies):
            self.container.create_receiver(self.conn, QUEUE, name="selector-receiver",
                                           options=Selector("colour = 'green'")).flow(1)
            self.status = "sent 2, waiting for the green one"
        elif self.case == "durable-subscription" and self.accepted == len(self.bodies):
            self.resubscribed = True
            self.container.create_receiver(self.conn, TOPIC, name="spec-subscription",
                                           options=DurableSubscription()).flow(1)
            self.status = "published while away, subscribing again"
        elif self.case == "browse" and self.accepted == len(self.bodies):
            self.container.create_receiver(self.conn, QUEUE, name="browse-receiver",
                                           options=Copy()).flow(len(self.bodies))
            self.status = "sent 3, waiting for the browser's attach"

    def on_rejected(self, event):
        self.finish(False, f"the broker rejected a message: {event.delivery.remote.condition}")

    def on_message(self, event):
        body = event.message.body
        if event.link.name == "drain-purge":
            self.skipped += 1
        elif self.case == "drain":
            self.received.append(body)
            self.status = f"received {len(self.received)}, drain not completed"
        elif self.case == "browse":
            self.on_browse_message(event, body)
        elif self.case == "selector":
            self.on_selector_message(event, body)
        elif body == self.bodies[0]:
            self.finish(True, f"ok {self.case}: sent and received one message of {len(body)} "
                              f"characters ({self.skipped} old messages skipped)")
        elif isinstance(body, str) and body.startswith(self.tag):
            self.finish(False, f"the message came back altered: {len(body)} characters, "
                               f"sent {len(self.bodies[0])}")
        else:
            self.skipped += 1
            event.receiver.flow(1)

    def on_selector_message(self, event, body):
        red, green = self.bodies
        if event.link.name == "selector-receiver":
            if body != green:
                self.finish(False, f"the selecting receiver got {body!r}")
            else:
                self.container.create_receiver(self.conn, QUEUE, name="plain-receiver").flow(1)
                self.status = "green received, waiting for the red one on a plain receiver"
        elif body == red:
            self.finish(True, "ok selector: the selector took the green message and left the red "
                              "one for a plain receiver")
        else:
            self.finish(False, f"the plain receiver got {body!r}")

    def on_browse_message(self, event, body):
        # Deliveries to the browser may come settled; the auto-accept does not mind.
        name = event.link.name
        if name == "browse-purge":
            self.skipped += 1
        elif name == "browse-receiver":
            self.browsed.append(body)
            self.status = f"browsed {len(self.browsed)} of 3"
            if len(self.browsed) == len(self.bodies):
                if self.browsed != self.bodies:
                    self.finish(False, f"the browser got {self.browsed!r}, expected {self.bodies!r}")
                else:
                    event.link.close()
                    self.status = "browsed 3, waiting for the browser's detach"
        elif name == "browse-consumer":
            self.received.append(body)
            self.status = f"browsed 3, consumed {len(self.received)} of 3"
            if len(self.received) == len(self.bodies):
                if self.received != self.bodies:
                    self.finish(False, f"after browsing, the consumer got {self.received!r}, "
                                       f"expected {self.bodies!r}")
                else:
                    self.finish(True, f"ok browse: a copy link (distribution-mode copy) saw 3 "
                                      f"messages in order, then a consumer got the same 3 "
                                      f"({self.skipped} old messages purged)")

    def on_link_flow(self, event):
        link = event.link
        if not link.is_receiver or link.credit != 0:
            return
        if link.name in ("drain-purge", "browse-purge"):
            link.close()
        elif link.name == "drain-receiver":
            given_back = link.drained()
            if self.received == self.bodies:
                self.finish(True, f"ok drain: 3 messages, then the drain completed with credit 0 "
                                  f"({given_back} credit given back, {self.skipped} old messages purged)")
            else:
                self.finish(False, f"the drain completed after {self.received!r}, expected {self.bodies!r}")

    def on_link_closed(self, event):
        if event.link.name == "drain-purge" and self.result is None:
            self.container.create_sender(self.conn, QUEUE, name="drain-sender")
            self.status = f"purged {self.skipped}, sending 3"
        elif event.link.name == "browse-purge" and self.result is None:
            self.container.create_sender(self.conn, QUEUE, name="browse-sender")
            self.status = f"purged {self.skipped}, sending 3"
        elif event.link.name == "browse-receiver" and self.result is None:
            self.container.create_receiver(self.conn, QUEUE,
                                           name="browse-consumer").flow(len(self.bodies))
            self.status = "browser closed, waiting for the consumer's 3 messages"

    def on_link_error(self, event):
        link, condition = event.link, event.link.remote_condition
        said = f"{condition.name}: {condition.description}"
        if self.refusal is None:
            self.finish(False, f"link {link.name} closed by the broker: {said}")
        elif condition.name != "amqp:not-implemented":
            self.finish(False, f"link {link.name} refused with {said}, expected amqp:not-implemented")
        elif self.refusal not in (condition.description or "").lower():
            self.finish(False, f"link {link.name} refused without naming the {self.refusal}: {said}")
        else:
            self.finish(True, f"ok {self.case}: link {link.name} refused with {said}")

    def on_link_closing(self, event):
        self.finish(False, f"link {event.link.name} closed by the broker without an error ({self.status})")

    def on_link_remote_detach(self, event):
        if self.case == "durable-subscription" and event.link.remote_condition is None:
            # The broker's answer to the subscriber's detach: publish while it is away.
            self.container.create_sender(self.conn, TOPIC, name="durable-sender")
            self.status = "detached, publishing"
            return
        self.finish(False, f"link {event.link.name} detached (not closed) by the broker: "
                           f"{event.link.remote_condition}")

    def on_transaction_declared(self, event):
        txn = event.transaction
        if self.txn_round == 0:
            for n in (1, 2):
                txn.send(self.txn_sender, Message(body=f"transaction {self.tag} rolled back {n}"))
            txn.abort()
            self.status = "sent 2 in the first transaction, rolling it back"
        else:
            self.bodies = [f"transaction {self.tag} committed"]
            txn.send(self.txn_sender, Message(body=self.bodies[0]))
            txn.commit()
            self.status = "sent 1 in the second transaction, committing it"

    def on_transaction_aborted(self, event):
        self.txn_round = 1
        self.container.declare_transaction(self.conn, handler=self)

    def on_transaction_committed(self, event):
        self.container.create_receiver(self.conn, QUEUE, name="txn-receiver").flow(1)
        self.status = "committed, waiting for the committed message (and none of the others)"

    def on_transaction_declare_failed(self, event):
        self.finish(False, f"the declare failed: {event.delivery.remote_state}")

    def on_transaction_commit_failed(self, event):
        self.finish(False, "the commit failed")

    def on_connection_error(self, event):
        self.finish(False, f"the broker closed the connection: {event.connection.remote_condition}")

    def on_transport_error(self, event):
        self.finish(False, f"transport error: {event.transport.condition} ({self.status})")

    def on_disconnected(self, event):
        self.finish(False, f"disconnected without an AMQP error ({self.status})")


def report(check):
    passed, text = check.result or (False, f"the connection ended before the case did: {check.status}")
    print(text, file=sys.stdout if passed else sys.stderr, flush=True)
    return 0 if passed else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="amqp://host:port")
    parser.add_argument("--case", required=True, choices=CASES)
    args = parser.parse_args()
    check = Check(args.url, args.case)

    def alarm(signum, frame):
        if check.result is None:
            check.result = (False, f"no end after 14 s: {check.status}")
        os._exit(report(check))

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(14)
    Container(check).run()
    return report(check)


if __name__ == "__main__":
    sys.exit(main())
