"""Where each simulated provider lives on the sandbox's one port (no web stack imported:
the demo needs its URLs before the server starts)."""

PAWACARD_PREFIX = "/pawacard/v3/"
PATASENTE_PREFIX = "/patasente/phantom-api/"
CONTROL_PREFIX = "/_control/"
#: The back office's providers (issue 12). Patascore's endpoint is the segment after
#: ``/api/v1/business/``; the client's base URL is :data:`PATASCORE_ROOT`.
PATASCORE_ROOT = "/patascore/"
PATASCORE_PREFIX = PATASCORE_ROOT + "api/v1/business/"
PARTICEEP_PREFIX = "/particeep/v1/"
