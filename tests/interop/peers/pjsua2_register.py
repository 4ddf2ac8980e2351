"""Register one pjsua2 (PJSIP) account with the server, then unregister; prints one JSON line per step.

Run as a subprocess by tests/interop/test_peers.py so pjsip's threads stay out of pytest:

    python pjsua2_register.py --server 127.0.0.1:5060 --user 1001 --password secret --transport udp

After ``registered`` it waits for a line on stdin (the test checks the server's bindings meanwhile),
then unregisters. Exit code 0 when the REGISTER got 200 and the unREGISTER 200, 1 otherwise,
2 on timeout.
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import time

import pjsua2 as pj


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class Account(pj.Account):  # type: ignore[misc]
    """Records every registration state change pjsip reports."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[tuple[int, int]] = []  # (status code, expiration)

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # pjsua2 callback name
        self.states.append((int(prm.code), int(prm.expiration)))
        emit("reg_state", code=int(prm.code), reason=str(prm.reason), expiration=int(prm.expiration))


def wait_for(ep: pj.Endpoint, predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ep.libHandleEvents(50)
        if predicate():  # type: ignore[operator]
            return True
    return False


def stdin_has_line() -> bool:
    return bool(select.select([sys.stdin], [], [], 0)[0])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True, help="host:port of the registrar")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--realm", default="*")
    parser.add_argument("--transport", default="udp", choices=("udp", "tcp"))
    parser.add_argument("--expires", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--outbound", action="store_true", help="RFC 5626 outbound (instance-id, reg-id)")
    args = parser.parse_args()

    ep = pj.Endpoint()
    ep.libCreate()
    ep_cfg = pj.EpConfig()
    ep_cfg.uaConfig.threadCnt = 0
    ep_cfg.uaConfig.mainThreadOnly = True
    ep_cfg.uaConfig.userAgent = "pjsua2-interop"
    ep_cfg.logConfig.level = 1
    ep_cfg.logConfig.consoleLevel = 1
    ep_cfg.medConfig.noVad = True
    ep.libInit(ep_cfg)
    ep.audDevManager().setNullDev()
    tp_cfg = pj.TransportConfig()
    tp_cfg.port = 0
    tp_cfg.boundAddress = "127.0.0.1"
    kind = pj.PJSIP_TRANSPORT_UDP if args.transport == "udp" else pj.PJSIP_TRANSPORT_TCP
    ep.transportCreate(kind, tp_cfg)
    ep.libStart()
    emit("started", pjsip=ep.libVersion().full)

    suffix = ";transport=tcp" if args.transport == "tcp" else ""
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{args.user}@{args.server}"
    acfg.regConfig.registrarUri = f"sip:{args.server}{suffix}"
    acfg.regConfig.timeoutSec = args.expires
    acfg.regConfig.retryIntervalSec = 0  # one attempt: the test wants the server's answer, not retries
    acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", args.realm, args.user, 0, args.password))
    acfg.natConfig.sipOutboundUse = 1 if args.outbound else 0
    acfg.natConfig.contactRewriteUse = 0
    acfg.natConfig.viaRewriteUse = 0
    account = Account()
    account.create(acfg)

    code = 0
    try:
        if not wait_for(ep, lambda: bool(account.states), args.timeout):
            emit("timeout", step="register")
            return 2
        status, expiration = account.states[-1]
        info = account.getInfo()
        emit("registered", code=status, expiration=expiration, active=bool(info.regIsActive))
        if status != 200 or not info.regIsActive:
            return 1
        if not wait_for(ep, stdin_has_line, args.timeout):
            emit("timeout", step="waiting for the go-ahead to unregister")
            return 2
        sys.stdin.readline()
        before = len(account.states)
        account.setRegistration(False)
        if not wait_for(ep, lambda: len(account.states) > before, args.timeout):
            emit("timeout", step="unregister")
            return 2
        status, expiration = account.states[-1]
        emit("unregistered", code=status, active=bool(account.getInfo().regIsActive))
        code = 0 if status == 200 else 1
    finally:
        account.shutdown()
        ep.libDestroy()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
