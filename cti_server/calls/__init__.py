"""Call control: the call model and the B2BUA that carries calls between trunks and phones.

Builds on the SIP stack (``cti_server.sip``) and the media layer (``cti_server.media``); publishes
every change of a call on the event bus as ``call.*``.
"""
