#!/usr/bin/python3
"""Sends messages to an address and receives them back with Qpid Proton, for the interop tests.

Exits 0 and prints "ok N" when every message came back in order; exits 1 with the reason otherwise.
"""

import argparse
import sys

from proton import ConnectionException, Message, SSLDomain
from proton.utils import BlockingConnection, ConnectionClosed, LinkDetached


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="amqp://host:port or amqps://host:port")
    parser.add_argument("--address", required=True)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--topic", action="store_true", help="attach the receiver before sending")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--ca", help="CA certificate (PEM) to trust for amqps")
    parser.add_argument("--expect-refusal", action="store_true",
                        help="succeed only if attaching a sender to the address is refused")
    parser.add_argument("--tag", default="message", help="what the message bodies start with")
    parser.add_argument("--send-only", action="store_true",
                        help="only send, and succeed when the broker accepted every message")
    args = parser.parse_args()

    ssl_domain = None
    if args.ca:
        ssl_domain = SSLDomain(SSLDomain.MODE_CLIENT)
        ssl_domain.set_trusted_ca_db(args.ca)
        ssl_domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
    options = {"timeout": 10, "ssl_domain": ssl_domain}
    if args.user:
        options.update(user=args.user, password=args.password, allowed_mechs="PLAIN", allow_insecure_mechs=True)
    connection = BlockingConnection(args.url, **options)
    try:
        if args.expect_refusal:
            try:
                connection.create_sender(args.address)
            except (LinkDetached, ConnectionClosed, ConnectionException) as refused:
                print("ok refused:", refused)
                return 0
            print("the sender was not refused", file=sys.stderr)
            return 1

        bodies = [f"{args.tag}-{i}" for i in range(args.count)]
        if args.send_only:
            sender = connection.create_sender(args.address, name=f"{args.address}-sender")
            for body in bodies:
                sender.send(Message(body=body))
            print("ok sent", len(bodies))
            return 0
        # Distinct link names: Proton names both links after the address by default, and the
        # broker needs names unique within a session (see docs/broker.md, "Known limits").
        receiver = None
        if args.topic:
            receiver = connection.create_receiver(args.address, credit=args.count, name=f"{args.address}-receiver")
        sender = connection.create_sender(args.address, name=f"{args.address}-sender")
        for body in bodies:
            sender.send(Message(body=body))
        if receiver is None:
            receiver = connection.create_receiver(args.address, credit=args.count, name=f"{args.address}-receiver")
        received = []
        for _ in bodies:
            message = receiver.receive(timeout=10)
            received.append(message.body)
            receiver.accept()
        if received != bodies:
            print(f"received {received!r}, sent {bodies!r}", file=sys.stderr)
            return 1
        print("ok", len(received))
        return 0
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
