"""Writes the hop-client journals that package hop's tests read, with
hop-client's own PublicationJournal (hop-client 0.13.0), and next to each
NAME.journal a NAME.pending.json: the messages hop itself reloads from that
journal as still to send (hop's reader is the reference).

    python3 -m venv /tmp/hopvenv && /tmp/hopvenv/bin/pip install hop-client==0.13.0 six
    cd adapter/kafka/hop/testdata && /tmp/hopvenv/bin/python make_journals.py [NAME...]

with NAMEs (v2, v1, relay) rewrites only those journals.
"""
import base64
import json
import os
import struct
import sys
import zlib

from hop import io, models
from hop.auth import Auth
from hop.robust_publisher import PublicationJournal


def pending(path):
    """The messages hop reloads from path, in hop's sending order."""
    j = PublicationJournal(path)
    out = []
    while j.has_messages_to_send():
        seq, value, topic, headers, key = j.get_next_message_to_send()
        out.append({
            "seq": seq,
            "topic": topic,
            "key": None if key is None else base64.b64encode(key).decode(),
            "value": base64.b64encode(value).decode(),
            "headers": [[k, base64.b64encode(v).decode()] for k, v in headers],
        })
    j.journal.close()
    return out


def fresh(name):
    path = name + ".journal"
    if os.path.exists(path):
        os.unlink(path)
    return path


def write_v2():
    """hop 0.13's own records: five messages packed as RobustProducer.write
    packs them, three confirmed (0, 2, 4), one requeued after a failure."""
    path = fresh("v2")
    j = PublicationJournal(path)
    alice = Auth("alice", "secret")
    msgs = [
        (models.JSONBlob(content={"event": "S250101a", "far": 1e-9}), None, False, None),
        ({"plain": "dict, sent as JSON"}, [("src", b"pipeline")], True, "key-1"),
        (models.Blob(content=b"\x00\x01binary\xff"), None, False, None),
        (models.GCNTextNotice(raw=b"TITLE: GCN/SWIFT NOTICE\nTRIGGER_NUM: 1\n", fields={}),
         {"extra": "header"}, False, b"\x00key"),
        (models.JSONBlob(content=[1, 2, 3]), None, False, None),
    ]
    for content, headers, test, key in msgs:
        value, hdrs = io.Producer.pack(content, headers, test=test, auth=alice)
        j.queue_message(value, "alerts", hdrs, key=key)
    sent = [j.get_next_message_to_send()[0] for _ in range(5)]
    assert sent == [0, 1, 2, 3, 4]
    j.mark_message_sent(0)
    j.requeue_message(1)
    j.mark_message_sent(2)
    j.requeue_message(3)
    j.mark_message_sent(4)
    j.journal.close()
    return path


def write_v1():
    """Version 1 records (older hop wrote them; 0.13 still reads them): the
    body laid out as hop's _read_message_v1 reads it, written through hop's
    own record writer; one confirmed by a sent record."""
    path = fresh("v1")
    j = PublicationJournal(path)
    q = struct.Struct("!Q")
    for seq, value, headers in [
        (0, b'{"v1": 0}', [("_id", bytes(range(16))), ("_format", b"json")]),
        (1, b"second", [("_format", b"blob")]),  # no _id
        (2, b'{"v1": 2}', [("_id", bytes(range(16, 32))), ("_format", b"json")]),
    ]:
        body = q.pack(seq) + q.pack(len(value)) + value + q.pack(len(headers))
        for k, v in headers:
            body += q.pack(len(k)) + k.encode() + q.pack(len(v)) + v
        j._write_record(PublicationJournal.msg_record_type_v1, body)
    j._write_record(PublicationJournal.sent_record_type, q.pack(2))
    j.journal.close()
    return path


def write_relay():
    """A relay's journal: hop 0.13 packs one consumed message twice, for
    two topics, with the headers it was consumed with (its _id, _sender
    and _format); pack appends a new _id (and _sender, _format) after
    them, so each message has two _id headers, the first the same."""
    path = fresh("relay")
    j = PublicationJournal(path)
    consumed = [("_id", bytes(range(100, 116))), ("_sender", b"upstream"), ("_format", b"json")]
    for topic in ("relay-a", "relay-b"):
        value, hdrs = io.Producer.pack(models.JSONBlob(content={"event": "S250101a"}),
                                       list(consumed), auth=Auth("relay", "secret"))
        j.queue_message(value, topic, hdrs)
    j.journal.close()
    return path


writers = {"v2": write_v2, "v1": write_v1, "relay": write_relay}
for name in sys.argv[1:] or writers:
    path = writers[name]()
    with open(path.replace(".journal", ".pending.json"), "w") as f:
        json.dump(pending(path), f, indent=1)
        f.write("\n")
    print(path, os.path.getsize(path), "bytes")
