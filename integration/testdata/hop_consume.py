"""Reads a topic from its start to its end with hop-client's consumer and
prints one JSON line per message: the model class hop chose, its content
(JSON models), and the message's _id, _format and _sender headers. With
--auth hop connects with the credential it chooses from its auth.toml.

    hop_consume.py kafka://HOST:PORT/TOPIC [--auth] [--include-test]

Run by integration/hop_test.go with the Python of a venv that has
hop-client 0.13.0 (HOP_PYTHON).
"""
import json
import sys
import uuid

from hop import io, models

url = sys.argv[1]
ignoretest = "--include-test" not in sys.argv[2:]
stream = io.Stream(auth="--auth" in sys.argv[2:], start_at=io.StartPosition.EARLIEST, until_eos=True)
with stream.open(url, "r", ignoretest=ignoretest) as consumer:
    for message, meta in consumer.read(metadata=True):
        headers = dict(meta.headers or [])
        out = {
            "model": type(message).__name__,
            "id": str(uuid.UUID(bytes=headers["_id"])) if "_id" in headers else None,
            "format": headers.get("_format", b"").decode(),
            "sender": headers.get("_sender", b"").decode(),
            "test": "_test" in headers,
        }
        if isinstance(message, models.JSONBlob):
            out["content"] = message.content
        print(json.dumps(out), flush=True)
