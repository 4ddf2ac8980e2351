"""cti-server: a telephony-first CTI server with a browser softphone."""

__version__ = "0.1.0"
