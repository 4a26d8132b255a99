"""Where each simulated provider lives on the sandbox's one port (no web stack imported:
the demo needs its URLs before the server starts)."""

PAWACARD_PREFIX = "/pawacard/v3/"
PATASENTE_PREFIX = "/patasente/phantom-api/"
CONTROL_PREFIX = "/_control/"
