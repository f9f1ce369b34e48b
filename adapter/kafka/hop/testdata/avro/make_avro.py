"""Writes the Avro messages of package hop's TestCheckAvroRecords, and
verdicts.json: for each, whether hop-client 0.13.0's consumer decodes it
(hop.io.Deserializer on a message whose _format is "avro") or the error it
raises. The one-record and two-record messages are what hop's own AvroBlob
serializes; the others are written with fastavro, which hop uses.

    cd adapter/kafka/hop/testdata/avro && /tmp/hopvenv/bin/python make_avro.py
"""
import io
import json

import fastavro
from hop import models
from hop.io import Deserializer

schema = {"type": "record", "name": "alert",
          "fields": [{"name": "event", "type": "string"}, {"name": "far", "type": "double"}]}
alerts = [{"event": "S250101a", "far": 1e-9}, {"event": "S250101b", "far": 2e-9}]


def fastavro_file(records, **kw):
    buf = io.BytesIO()
    fastavro.writer(buf, schema, records, **kw)
    return buf.getvalue()


one = models.AvroBlob(content=alerts[0], schema=schema).serialize()["content"]
messages = {
    "one": one,
    "two": models.AvroBlob(content=alerts, schema=schema, single_record=False).serialize()["content"],
    "none": fastavro_file([]),
    "two-blocks": fastavro_file(alerts, sync_interval=1),
    "one-deflate": fastavro_file(alerts[:1], codec="deflate"),
    "cut": one[:-3],
    "no-sync": one[:-16],
}


class Message:
    def __init__(self, value):
        self._value = value

    def value(self):
        return self._value

    def headers(self):
        return [("_format", b"avro")]


verdicts = {}
for name, value in messages.items():
    with open(name + ".avro", "wb") as f:
        f.write(value)
    try:
        Deserializer.deserialize(Message(value))
        verdicts[name] = "ok"
    except Exception as e:
        verdicts[name] = f"{type(e).__name__}: {e}"
with open("verdicts.json", "w") as f:
    json.dump(verdicts, f, indent=1)
    f.write("\n")
print(verdicts)
