#!/usr/bin/env python3
"""A roverlink message-socket client, standard library only (Python 3.8+).

Framing (docs/socket.md): one JSON object per line, UTF-8, each way. Say hello first; then send
{"t":"send","peer":...,"channel":"control"|"telemetry","text":... | "data":<base64>,"id":...}
or {"t":"position","x":...,"y":...} and read "hello", "ok", "error", "message", "link", "handover" and "rtt" frames.

    python3 roverlink_client.py --socket /run/user/1000/roverlink/yard/rover-7.sock listen
    python3 roverlink_client.py --socket ... send base-1 control '{"cmd":"status"}'
    python3 roverlink_client.py --socket ... echo        # send every control message back

As a library:

    from roverlink_client import Client
    with Client("/run/user/1000/roverlink/yard/rover-7.sock", name="nav") as c:
        c.send("base-1", "control", b"\\x00\\x01", id=1)   # bytes or str
        c.position(12.5, 40.0, map="yard")               # where the rover is now
        for frame in c.frames():                         # frame["data"] is bytes, or "text" a str
            print(frame)
"""
import argparse
import base64
import json
import os
import socket
import sys
import threading

VERSION = 1


class RoverlinkError(Exception):
    """An error frame from the agent, as an exception."""

    def __init__(self, frame):
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.frame = frame


class Client:
    def __init__(self, path, name=None, timeout=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.reader = self.sock.makefile("rb")
        self.lock = threading.Lock()
        self._write({"t": "hello", "v": VERSION, **({"name": name} if name else {})})
        self.hello = self.recv()
        if self.hello.get("t") != "hello":
            raise RoverlinkError(self.hello)

    def _write(self, frame):
        # allow_nan=False: NaN is not JSON; the agent could only answer "not JSON" without the id.
        line = (json.dumps(frame, separators=(",", ":"), allow_nan=False) + "\n").encode()
        with self.lock:  # one frame at a time from any thread
            self.sock.sendall(line)

    def send(self, peer, channel, payload, id=None, ttl_ms=None):
        """Send bytes (as base64 "data") or str (as "text"); with an id, an "ok" or "error" answers."""
        frame = {"t": "send", "peer": peer, "channel": channel}
        if isinstance(payload, str):
            frame["text"] = payload
        else:
            frame["data"] = base64.b64encode(bytes(payload)).decode()
        if id is not None:
            frame["id"] = id
        if ttl_ms is not None:
            frame["ttlMs"] = ttl_ms
        self._write(frame)

    def position(self, x, y, map=None, id=None):
        """Publish where the rover is (the room's peers see it); with an id, an "ok" or "error" answers.
        NaN or an infinity raises ValueError here (not JSON), rather than an error without the id."""
        frame = {"t": "position", "x": x, "y": y}
        if map is not None:
            frame["map"] = map
        if id is not None:
            frame["id"] = id
        self._write(frame)

    def recv(self):
        """The next frame (a dict), "data" decoded to bytes; None once the agent closed."""
        line = self.reader.readline()
        if not line:
            return None
        frame = json.loads(line)
        if "data" in frame:
            frame["data"] = base64.b64decode(frame["data"])
        return frame

    def frames(self):
        while True:
            frame = self.recv()
            if frame is None:
                return
            yield frame

    def close(self):
        self.reader.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _printable(frame):
    if isinstance(frame.get("data"), bytes):
        frame = {**frame, "data": base64.b64encode(frame["data"]).decode()}
    return json.dumps(frame)


def main(argv=None):
    p = argparse.ArgumentParser(description="roverlink message socket client")
    p.add_argument("--socket", default=os.environ.get("ROVERLINK_SOCKET"), help="socket path (or $ROVERLINK_SOCKET)")
    p.add_argument("--name", default="roverlink_client.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("listen", help="print every frame as a JSON line")
    s = sub.add_parser("send", help="send one text message and wait for its ok")
    s.add_argument("peer")
    s.add_argument("channel", choices=["control", "telemetry"])
    s.add_argument("text")
    sub.add_parser("echo", help="send every control message back to its peer")
    a = p.parse_args(argv)
    if not a.socket:
        p.error("--socket (or ROVERLINK_SOCKET) is required")
    try:
        c = Client(a.socket, name=a.name)
    except (OSError, RoverlinkError) as e:
        sys.exit(f"roverlink_client: {a.socket}: {e}")
    print(_printable(c.hello), flush=True)
    if a.cmd == "send":
        c.send(a.peer, a.channel, a.text, id=1)
    for frame in c.frames():
        if a.cmd == "send" and frame.get("id") == 1:
            if frame["t"] == "error":
                sys.exit(f"roverlink_client: {frame['code']}: {frame['message']}")
            return
        if a.cmd == "echo" and frame["t"] == "message" and frame["channel"] == "control":
            c.send(frame["peer"], "control", frame["data"] if "data" in frame else frame["text"])
        elif a.cmd != "send":
            print(_printable(frame), flush=True)
    sys.exit("roverlink_client: the agent closed the socket")


if __name__ == "__main__":
    main()
