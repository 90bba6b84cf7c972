#!/usr/bin/env python3
"""A librdkafka group member (confluent-kafka) for the interoperability tests.

It joins GROUP on TOPIC next to kafka-actors instances, answers every
request on REPLY_TOPIC with the request's correlation id (as kafka-actors'
echo handler does), commits only after the replies are acknowledged, and
prints one JSON line per event on stdout:

  {"event": "assigned", "partitions": [[topic, p], ...], "generation": N}
  {"event": "revoked", "partitions": [...]}
  {"event": "handled", "count": N}
  {"event": "closed"}

SIGTERM closes the consumer cleanly (it commits and leaves the group).

usage: rdkafka_member.py BOOTSTRAP GROUP TOPIC REPLY_TOPIC [ASSIGNOR]
"""

import json
import signal
import sys

from confluent_kafka import Consumer, KafkaException, Producer


def say(**event):
    print(json.dumps(event), flush=True)


def main():
    bootstrap, group, topic, reply_topic = sys.argv[1:5]
    assignor = sys.argv[5] if len(sys.argv) > 5 else "range"
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "partition.assignment.strategy": assignor,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "client.id": "rdkafka-member",
    })
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1})
    owned = set()

    def partitions(ps):
        return sorted([p.topic, p.partition] for p in ps)

    def on_assign(c, ps):
        if assignor == "cooperative-sticky":
            owned.update((p.topic, p.partition) for p in ps)
        else:
            owned.clear()
            owned.update((p.topic, p.partition) for p in ps)
        say(event="assigned", partitions=sorted(list(x) for x in owned),
            generation=c.memberid() and _generation(c))

    def on_revoke(c, ps):
        for p in ps:
            owned.discard((p.topic, p.partition))
        say(event="revoked", partitions=partitions(ps))

    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    handled = 0
    while running[0]:
        msgs = consumer.consume(num_messages=200, timeout=0.2)
        if not msgs:
            continue
        batch = []
        for m in msgs:
            if m.error():
                say(event="error", error=str(m.error()))
                continue
            batch.append(m)
            try:
                request = json.loads(m.value())
            except (TypeError, ValueError):
                request = {}
            correlation = request.get("correlation_id") if isinstance(request, dict) else None
            reply = {"correlation_id": correlation, "payload": request.get("payload")
                     if isinstance(request, dict) else request}
            producer.produce(reply_topic, key=m.key(), value=json.dumps(reply).encode(),
                             headers=[("correlation_id", (correlation or "").encode())])
        producer.flush(30)
        if batch:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as e:
                # A rebalance took the partitions away: their new owner
                # handles the records again (at-least-once).
                say(event="commit_failed", error=str(e))
            handled += len(batch)
            say(event="handled", count=handled)
    consumer.close()
    say(event="closed")


def _generation(consumer):
    # confluent-kafka exposes no generation id; the member id is enough to
    # tell members apart.
    return -1


if __name__ == "__main__":
    main()
