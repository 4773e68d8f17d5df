"""Child-process entry point of the ``embedded`` backend: amqtt on 127.0.0.1.

``python -m parallel_isolation.mqtt.embedded --port N`` runs until SIGTERM
or SIGINT, then shuts the broker down gracefully.  Logs go to stderr, which
the parent redirects into the worker's broker log.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any


def _config(port: int) -> dict[str, object]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


def _broker_class() -> type:
    """amqtt's Broker, with retained-message replay limited to the session's own filters.

    amqtt (0.11 and 0.12) replays, on every connect, the retained messages of
    *every* filter any client ever subscribed to, to the connecting client,
    whether or not it subscribed to them.  That leaks retained messages across
    namespaces, exactly what the toolkit exists to prevent, so the replay is
    restricted to filters this session holds.
    """
    from amqtt.broker import Broker

    class IsolatingBroker(Broker):  # type: ignore[misc]
        async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Any
        ) -> None:
            holders = self._subscriptions.get(subscription[0], [])
            if not any(holder.client_id == session.client_id for holder, _ in holders):
                return
            await super()._publish_retained_messages_for_subscription(subscription, session)

    return IsolatingBroker


async def _serve(port: int) -> int:
    Broker = _broker_class()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    broker = Broker(_config(port))
    try:
        await broker.start()
    except OSError as error:
        # Mirror mosquitto's wording so the parent can detect a port clash.
        logging.getLogger("embedded-broker").error("Error: %s", error)
        return 1
    logging.getLogger("embedded-broker").info("listening on 127.0.0.1:%d", port)
    await stop.wait()
    logging.getLogger("embedded-broker").info("shutting down")
    await broker.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("transitions").setLevel(logging.WARNING)
    logging.getLogger("amqtt.broker.plugins").setLevel(logging.WARNING)
    return asyncio.run(_serve(args.port))


if __name__ == "__main__":
    sys.exit(main())
