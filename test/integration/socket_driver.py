"""Test driver for test/integration/socket.test.ts: the docs' Python client sends numbered
control messages (text and binary, alternately) to an echoing peer and counts what comes back.

    python3 socket_driver.py <socket> <peer> <count> <rate/s>

Prints progress lines {"received": n} and, at the end, one JSON summary line.
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "docs", "examples"))
from roverlink_client import Client  # noqa: E402

path, peer, count, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])


def payload(i):
    # Odd: bytes with every byte value (NUL and newline included); even: text with non-ASCII.
    if i % 2:
        return i.to_bytes(4, "big") + bytes(range(256))
    return json.dumps({"seq": i, "s": "héllo ✓ \n"})


def seq_of(frame):
    if "data" in frame:
        d = frame["data"]
        return int.from_bytes(d[:4], "big"), d == payload(int.from_bytes(d[:4], "big"))
    i = json.loads(frame["text"])["seq"]
    return i, frame["text"] == payload(i)


c = Client(path, name="socket_driver")
seen = {}
oks = set()
st = {"received": 0, "duplicated": 0, "reordered": 0, "corrupted": 0, "okDuplicated": 0,
      "errors": [], "handovers": [], "rttFrames": 0, "last": -1}
done = threading.Event()


def reader():
    for f in c.frames():
        t = f["t"]
        if t == "message" and f["channel"] == "control":
            i, intact = seq_of(f)
            if not intact:
                st["corrupted"] += 1
            if i in seen:
                st["duplicated"] += 1
                continue
            seen[i] = True
            if i < st["last"]:
                st["reordered"] += 1
            st["last"] = i
            st["received"] += 1
            if st["received"] % 50 == 0:
                print(json.dumps({"received": st["received"]}), flush=True)
            if st["received"] == count:
                done.set()
        elif t == "ok":
            if f["id"] in oks:
                st["okDuplicated"] += 1
            oks.add(f["id"])
        elif t == "error":
            st["errors"].append(f)
        elif t == "handover":
            st["handovers"].append({**f, "receivedBefore": st["received"]})
        elif t == "rtt":
            st["rttFrames"] += 1
    done.set()


threading.Thread(target=reader, daemon=True).start()
for i in range(count):
    c.send(peer, "control", payload(i), id=i)
    time.sleep(1 / rate)
done.wait(60)
time.sleep(1.5)  # any duplicate would come now; and an rtt frame or two
del st["last"]
print(json.dumps({"sent": count, "oks": len(oks), **st}), flush=True)
c.close()
