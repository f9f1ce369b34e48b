"""Reads a topic from its start to its end with hop-client's consumer and
prints one JSON line per message: the model class hop chose, its content
(JSON models), and the message's _id and _format headers.

    hop_consume.py kafka://HOST:PORT/TOPIC [--include-test]

Run by integration/hop_test.go with the Python of a venv that has
hop-client 0.13.0 (HOP_PYTHON).
"""
import json
import sys
import uuid

from hop import io, models

url = sys.argv[1]
ignoretest = "--include-test" not in sys.argv[2:]
stream = io.Stream(auth=False, start_at=io.StartPosition.EARLIEST, until_eos=True)
with stream.open(url, "r", ignoretest=ignoretest) as consumer:
    for message, meta in consumer.read(metadata=True):
        headers = dict(meta.headers or [])
        out = {
            "model": type(message).__name__,
            "id": str(uuid.UUID(bytes=headers["_id"])) if "_id" in headers else None,
            "format": headers.get("_format", b"").decode(),
            "test": "_test" in headers,
        }
        if isinstance(message, models.JSONBlob):
            out["content"] = message.content
        print(json.dumps(out), flush=True)
