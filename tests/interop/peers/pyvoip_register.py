"""Register as a pyVoIP ``VoIPPhone`` with the server, then unregister; prints one JSON line per step.

Run as a subprocess by tests/interop/test_peers.py (pyVoIP uses threads and blocking sockets):

    python pyvoip_register.py --server 127.0.0.1 --port 5060 --user 1001 --password secret --sip-port 0

After ``registered`` it waits for a line on stdin, then unregisters. Exit code 0 when both worked.
pyVoIP 1.6 answers challenges with MD5 and without qop (RFC 2069 style).
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys

from pyVoIP.VoIP import PhoneStatus, VoIPPhone


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()

    phone = VoIPPhone(args.server, args.port, args.user, args.password, myIP="127.0.0.1",
                      sipPort=free_udp_port(), rtpPortLow=40000, rtpPortHigh=40100)
    phone.sip.register_timeout = int(args.timeout)
    try:
        phone.start()
    except Exception as exc:  # pyVoIP raises its own error classes for 401/403/timeouts
        emit("register_failed", error=f"{type(exc).__name__}: {exc}")
        phone.stop()
        return 1
    status = phone.get_status()
    emit("registered", status=status.name)
    if status is not PhoneStatus.REGISTERED:
        phone.stop()
        return 1
    if not select.select([sys.stdin], [], [], args.timeout)[0]:
        emit("timeout", step="waiting for the go-ahead to unregister")
        phone.stop()
        return 2
    sys.stdin.readline()
    if phone.sip.registerThread is not None:
        phone.sip.registerThread.cancel()
        phone.sip.registerThread = None
    unregistered = phone.sip.deregister()
    emit("unregistered", ok=bool(unregistered))
    phone.stop()
    return 0 if unregistered else 1


if __name__ == "__main__":
    raise SystemExit(main())
