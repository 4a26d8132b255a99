"""Sente POS domain: no Textual, no OpenCV."""

__version__ = "0.1.0"
