#!/usr/bin/python3
"""Leaves the broker with one committed and one open transaction, for the crash test.

Usage: proton_tx.py --url amqp://HOST:PORT --tag TAG
Sends, in a first transaction, the durable messages "TAG committed 1" and "TAG committed 2" to
`orders` and "TAG committed audit" to `audit`, and commits it. Then sends, in a second, the durable
messages "TAG open 1" and "TAG open 2" to `orders`, waits until the broker has taken both, prints
"ready" and waits, the second transaction open, until it is killed.
"""

import argparse
import sys
import time

from proton import Message
from proton.handlers import MessagingHandler, TransactionHandler
from proton.reactor import Container


class Open(MessagingHandler, TransactionHandler):
    def __init__(self, url, tag):
        super().__init__()
        self.url, self.tag = url, tag
        self.committed = False
        self.taken = 0

    def on_start(self, event):
        self.container = event.container
        self.conn = event.container.connect(self.url)
        self.orders = event.container.create_sender(self.conn, "orders")
        self.audit = event.container.create_sender(self.conn, "audit")
        event.container.declare_transaction(self.conn, handler=self)

    def on_transaction_declared(self, event):
        txn = event.transaction
        if not self.committed:
            for n in (1, 2):
                txn.send(self.orders, Message(body=f"{self.tag} committed {n}", durable=True))
            txn.send(self.audit, Message(body=f"{self.tag} committed audit", durable=True))
            txn.commit()
        else:
            for n in (1, 2):
                txn.send(self.orders, Message(body=f"{self.tag} open {n}", durable=True))

    def on_transaction_committed(self, event):
        self.committed = True
        self.container.declare_transaction(self.conn, handler=self)

    def on_settled(self, event):
        if self.committed and event.link == self.orders:
            self.taken += 1
            if self.taken == 2:
                print("ready", flush=True)
                # Keep the transaction open until the broker is killed under it.
                time.sleep(60)
                sys.exit(0)

    def on_transaction_declare_failed(self, event):
        sys.exit("the declare failed")

    def on_transaction_commit_failed(self, event):
        sys.exit("the commit failed")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--tag", required=True)
    args = parser.parse_args()
    Container(Open(args.url, args.tag)).run()


if __name__ == "__main__":
    main()
