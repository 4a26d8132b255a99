"""The wiring of Sente POS: the command line, start-up and the launchers that put the
domain (pos), the screens and the hardware together. It sits above all three; nothing
below imports it (the import-linter contract in pyproject.toml holds the layers)."""
