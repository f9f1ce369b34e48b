"""Writes auth_cases.json: for a set of credentials, which one hop-client's
own select_matching_auth (hop-client 0.13.0) picks for each broker and URL
user, or which error it raises. Package hop's TestSelectCredential must
pick the same.

    cd adapter/kafka/hop/testdata && /tmp/hopvenv/bin/python make_auth_cases.py
"""
import json

from hop.auth import Auth, AmbiguousCredentialError, select_matching_auth

creds = [
    {"username": "any1", "hostname": ""},
    {"username": "kafka-a", "hostname": "kafka.example.org"},
    {"username": "kafka-a-9092", "hostname": "kafka.example.org:9092"},
    {"username": "kafka-b-9093", "hostname": "kafka.example.org:9093"},
    {"username": "other", "hostname": "other.example.org:9092"},
    {"username": "v6", "hostname": "[::1]:9092"},
    {"username": "shared", "hostname": "shared.example.org"},
    {"username": "shared2", "hostname": "shared.example.org"},
    {"username": "any2", "hostname": ""},
]
sets = {
    "all": creds,
    "no-wildcards": [c for c in creds if c["hostname"]],
    "one-wildcard": [creds[0], creds[4]],
}
brokers = ["kafka.example.org", "kafka.example.org:9092", "kafka.example.org:9093",
           "kafka.example.org:9094", "other.example.org", "other.example.org:9093",
           "unknown.example.org:9092", "[::1]", "[::1]:9092", "shared.example.org:9092",
           "shared.example.org"]
users = [None, "any1", "kafka-a", "kafka-a-9092", "other", "shared2", "nobody"]

cases = []
for name, cs in sets.items():
    auths = [Auth(c["username"], "pw-" + c["username"], host=c["hostname"]) for c in cs]
    for broker in brokers:
        for user in users:
            try:
                got = select_matching_auth(auths, broker, user).username
                err = None
            except AmbiguousCredentialError:
                got, err = None, "ambiguous"
            except RuntimeError:
                got, err = None, "none"
            cases.append({"set": name, "broker": broker, "user": user or "", "picks": got, "error": err})

with open("auth_cases.json", "w") as f:
    json.dump({"credentials": creds, "sets": {k: [c["username"] for c in v] for k, v in sets.items()},
               "cases": cases}, f, indent=0)
    f.write("\n")
print(len(cases), "cases")
