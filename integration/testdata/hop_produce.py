"""Publishes COUNT JSON messages {"i": N} through hop-client's
RobustProducer, printing "N ID" (ID: the message's _id as hop chose it)
once each write() has returned, so that a test that kills this process
knows which messages hop had journaled.

    hop_produce.py kafka://HOST:PORT/TOPIC JOURNAL COUNT

Run by integration/hop_test.go with the Python of a venv that has
hop-client 0.13.0 (HOP_PYTHON).
"""
import os
import sys
import uuid

from hop import io
from hop.robust_publisher import RobustProducer

url, journal, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

# hop's Producer.pack gives each message its _id with uuid.uuid4(): note
# the last one handed out, which is this message's.
last = []


class _UUID:
    def __getattr__(self, name):
        return getattr(uuid, name)

    @staticmethod
    def uuid4():
        u = uuid.uuid4()
        last.append(u)
        return u


io.uuid = _UUID()

with RobustProducer(url, auth=False, journal_path=journal) as producer:
    for i in range(count):
        producer.write({"i": i})
        # One write(2) per line, shorter than PIPE_BUF: the test kills this
        # process at any moment and must never read half a line (print()
        # hands its pieces to a buffer that may go out between them).
        os.write(1, f"{i} {last[-1]}\n".encode())
