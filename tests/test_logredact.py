import logging

import pytest

from pos.logredact import RedactingFilter, redact


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("POST /debit-patasente-card/108?amount=100&pin=7391&wallet_account=x", "7391"),
        ('{"username": "v", "password": "hunter22", "key": "ElKW2XWq"}', "hunter22"),
        ('{"key": "ElKW2XWqxylnUDPG6bKAW5zKI3JyT23CpP1Nu68c724"}', "ElKW2XWqxyln"),
        ("Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.abc", "eyJ0eXAi"),
        ("login?username=M000001&password=demo1234", "demo1234"),
    ],
)
def test_redact(raw: str, secret: str) -> None:
    assert secret not in redact(raw)


def test_filter_scrubs_messages_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("redact-test")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="redact-test"):
        logger.info("calling %s", "https://x/debit?pin=7391&amount=5")
        try:
            raise RuntimeError("failed https://x/debit?pin=7391")
        except RuntimeError:
            logger.exception("boom")
    text = caplog.text
    assert "7391" not in text and "pin=***" in text


def test_tls_verification_stays_on() -> None:
    import ssl

    from pos.providers.http import tls_context

    ctx = tls_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
