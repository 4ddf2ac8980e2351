"""Media: RTP/RTCP (RFC 3550), G.711, RFC 4733 DTMF, port allocation, RTP endpoints and the relay
between call legs, music on hold, and SDP offer/answer (RFC 3264) codec selection."""
