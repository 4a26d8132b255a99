"""Shell completion for ``sente-pos``, from the argparse parser itself (argcomplete).

``sente-pos completion bash|zsh|fish`` prints the script that registers it; the shell
then runs ``sente-pos`` with ``_ARGCOMPLETE`` set on each Tab, and :func:`autocomplete`
answers with the subcommands, options and choices the parser declares, then exits.
argcomplete is imported only then, never on an ordinary start.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

SHELLS = ("bash", "zsh", "fish")
PROG = "sente-pos"


def autocomplete(parser: argparse.ArgumentParser) -> None:
    """Answer a shell's completion request and exit; return at once otherwise."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    # Options only once a "-" is typed (as git and systemctl complete): a bare Tab
    # lists the subcommands or the choices.
    argcomplete.autocomplete(parser, always_complete_options=False)


def add_completion_command(sub: Any) -> None:
    sp = sub.add_parser("completion", help="print the shell completion script "
                        "(e.g. `sente-pos completion bash > /etc/bash_completion.d/sente-pos`)")
    sp.add_argument("shell", choices=SHELLS)
    sp.set_defaults(fn=cmd_completion)


def cmd_completion(args: argparse.Namespace, settings: Any) -> int:
    print(shell_script(args.shell), end="")
    return 0


def shell_script(shell: str) -> str:
    import argcomplete

    return str(argcomplete.shellcode([PROG], shell=shell))
