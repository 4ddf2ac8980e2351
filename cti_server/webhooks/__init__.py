"""Integrator webhooks: signed deliveries of ``call.*``, ``screenpop.*`` and ``work_item.*`` events."""

from cti_server.webhooks.signing import SignatureError, sign, verify

__all__ = ["SignatureError", "sign", "verify"]
