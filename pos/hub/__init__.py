"""The back office (``sente-pos hub``): one place where a merchant's terminals meet.

Terminal API (enrolment, idempotent journal upload, restore), the web dashboard,
merchant verification with Patascore (KYB) and the signed exchange with Particeep.
Nothing here is imported by the counter app: the terminal's side is :mod:`pos.hubsync`.
"""
