"""A last line of defence: scrub PINs, passwords and keys from any log record.

The code never logs them; this filter makes sure a library's message (a URL
with Patasente's query-string PIN in an exception, a JSON body) cannot leak
one into ``sente-pos.log`` either.
"""

from __future__ import annotations

import logging
import re

_PATTERNS = (
    # query strings / form bodies: pin=1234, password=..., key=..., new_pin=...
    re.compile(r"(?i)\b((?:new_|current_)?(?:pin|password|key|token))=([^&\s'\"]+)"),
    # JSON: "password": "...", "key": "...", "pin": "1234"
    re.compile(r"(?i)(\"(?:pin|password|key|token)\"\s*:\s*)\"([^\"]*)\""),
    # Authorization headers
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]+)"),
)


def redact(text: str) -> str:
    text = _PATTERNS[0].sub(r"\1=***", text)
    text = _PATTERNS[1].sub(r'\1"***"', text)
    return _PATTERNS[2].sub(r"\1***", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, scrubbed, so the handler prints the clean text.
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True
