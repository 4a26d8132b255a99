"""Simulators of the Patasente and PawaCard APIs, over real HTTP, for tests, the demo and
benchmarks. Start one with :class:`pos.sandbox.server.SandboxServer`; the demo data is in
:mod:`pos.sandbox.data`.
"""
