"""A pjsua2 (PJSIP) desk phone that does an attended transfer; prints one JSON line per step.

Run as a subprocess by tests/interop/test_calls_pjsua2.py (null audio device, pjsip's threads stay out
of pytest):

    python pjsua2_attended_transfer.py --server 127.0.0.1:5060 --user 1001 --password secret --target 1002

It registers, answers the first incoming call (call 1), calls ``--target`` through the server (call 2,
the consultation), then transfers call 1 to call 2 with REFER + Replaces (RFC 3891: pjsua's
``xferReplaces``) and waits for the sipfrag NOTIFY 200 and for both of its calls to end. Exit code 0
when the transfer succeeded, 1 when it failed, 2 on timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

import pjsua2 as pj


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class Call(pj.Call):  # type: ignore[misc]
    """Records state changes and transfer progress."""

    def __init__(self, account: pj.Account, name: str, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.name = name
        self.state = pj.PJSIP_INV_STATE_NULL
        self.transfer_codes: list[tuple[int, bool]] = []

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # pjsua2 callback name
        info = self.getInfo()
        self.state = info.state
        emit("call_state", call=self.name, state=info.stateText, code=int(info.lastStatusCode))

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:  # pjsua2 callback name
        self.transfer_codes.append((int(prm.statusCode), bool(prm.finalNotify)))
        emit("transfer_status", code=int(prm.statusCode), final=bool(prm.finalNotify))


class Account(pj.Account):  # type: ignore[misc]
    """Answers the first incoming call."""

    def __init__(self) -> None:
        super().__init__()
        self.reg_codes: list[int] = []
        self.incoming: Call | None = None

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # pjsua2 callback name
        self.reg_codes.append(int(prm.code))
        emit("registered", code=int(prm.code))

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # pjsua2 callback name
        call = Call(self, "call1", prm.callId)
        self.incoming = call
        answer = pj.CallOpParam()
        answer.statusCode = 200
        call.answer(answer)


def wait_for(ep: pj.Endpoint, predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ep.libHandleEvents(20)
        if predicate():
            return True
    return False


def run(ep: pj.Endpoint, account: Account, args: argparse.Namespace) -> int:
    confirmed = pj.PJSIP_INV_STATE_CONFIRMED
    disconnected = pj.PJSIP_INV_STATE_DISCONNECTED
    if not wait_for(ep, lambda: bool(account.reg_codes), args.timeout) or account.reg_codes[-1] != 200:
        emit("timeout", step="register")
        return 2
    if not wait_for(ep, lambda: account.incoming is not None and account.incoming.state == confirmed,
                    args.timeout):
        emit("timeout", step="incoming call")
        return 2
    first = account.incoming
    assert first is not None
    consultation = Call(account, "call2")
    consultation.makeCall(f"sip:{args.target}@{args.server}", pj.CallOpParam(True))
    if not wait_for(ep, lambda: consultation.state == confirmed, args.timeout):
        emit("timeout", step="consultation call")
        return 2
    wait_for(ep, lambda: False, 0.5)  # talk to the target a moment
    first.xferReplaces(consultation, pj.CallOpParam(True))
    emit("refer_sent")
    if not wait_for(ep, lambda: any(final for _code, final in first.transfer_codes), args.timeout):
        emit("timeout", step="transfer NOTIFY")
        return 2
    code = first.transfer_codes[-1][0]
    if first.state != disconnected:
        first.hangup(pj.CallOpParam(True))
    if not wait_for(ep, lambda: first.state == disconnected and consultation.state == disconnected,
                    args.timeout):
        emit("timeout", step="hang up")
        return 2
    emit("done", transfer_code=code)
    return 0 if code == 200 else 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True, help="host:port of the server")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--target", required=True, help="user to consult and transfer to")
    parser.add_argument("--timeout", type=float, default=10.0)
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
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tp_cfg)
    ep.libStart()

    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{args.user}@{args.server}"
    acfg.regConfig.registrarUri = f"sip:{args.server}"
    acfg.regConfig.retryIntervalSec = 0
    acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
    acfg.natConfig.contactRewriteUse = 0
    acfg.natConfig.viaRewriteUse = 0
    acfg.natConfig.sdpNatRewriteUse = 0
    account = Account()
    account.create(acfg)
    code = run(ep, account, args)
    ep.hangupAllCalls()
    wait_for(ep, lambda: False, 0.2)
    # pjsua2's Python Call objects abort the process when libDestroy runs before they are collected;
    # everything worth saying was printed, so leave without the library teardown.
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
