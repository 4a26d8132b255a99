"""What ``sente-pos kiosk install`` does to a Raspberry Pi, as data.

:func:`plan_install` looks at a target root (``/`` or a scratch directory) and returns
the README's install steps as sections of planned actions: files with their contents and
modes, a directory, commands with the probe that says whether they are still needed.
Nothing here writes anything; ``sente_pos.kiosk`` prints a plan (``--dry-run``) or
applies it. Probes read files (``/var/lib/dpkg/status``, ``/etc/passwd``, the symlinks
``systemctl`` makes) so they answer the same way for a scratch root as for the device.

Standard library only: on a fresh Pi this runs from the source tree before anything is
installed (``sudo python3 -m sente_pos.kiosk install``).
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

UNIT_NAME = "sente-pos.service"
#: Root's own record of what install did (the manifest and backups). Not in the data
#: directory: the service user can write there, and uninstall trusts this record.
STATE_DIR = "/var/lib/sente-pos-kiosk"
PACKAGES = ("python3-venv", "libzbar0", "console-setup", "kbd", "libusb-1.0-0")
EXTRAS = "usb,serial"  # pyusb and pyserial: every printer.kind works after a config change
CMDLINE_CANDIDATES = ("/boot/firmware/cmdline.txt", "/boot/cmdline.txt")
CMDLINE_TOKENS = ("consoleblank=0", "loglevel=3", "quiet")
TERMINUS_SIZES = ("6x12", "8x14", "8x16", "10x20", "11x22", "12x24", "14x28", "16x32")
FONT_FACES = ("Terminus", "TerminusBold", "TerminusBoldVGA", "VGA", "Fixed")
BLOCK_BEGIN = "# BEGIN sente-pos kiosk (written by `sente-pos kiosk install`)"
BLOCK_END = "# END sente-pos kiosk"

_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_PATH = re.compile(r"(/[A-Za-z0-9._-]+){2,}")
_TTY = re.compile(r"tty([1-9]|[1-5][0-9]|6[0-3])")
_USB_ID = re.compile(r"[0-9a-f]{4}:[0-9a-f]{4}")


class KioskError(Exception):
    """A clear message for the person at the console, with the CLI's exit code."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class KioskUsageError(KioskError):
    """Bad options or input: nothing was changed (exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Options:
    """The things that vary from one counter to the next; defaults match the README."""

    user: str = "sentepos"
    data_dir: str = "/var/lib/sente-pos"
    app_dir: str = "/opt/sente-pos"
    tty: str = "tty1"
    font_face: str = "Terminus"
    font_size: str = "6x12"
    source: str | None = None  # source tree or wheel to install into app_dir
    constraints: str | None = None
    config: str | None = None  # the merchant's config.toml, copied if none is there yet
    camera_usb: str | None = None  # VID:PID of a UVC camera: /dev/pos-camera
    printer_usb: str | None = None  # VID:PID of a libusb printer (printer.kind = "usb")
    cmdline: str | None = None  # the kernel command line file (default: the Pi's)
    reinstall: bool = False  # run pip again even if this version is installed
    start: bool = True

    def validate(self) -> None:
        """Raise :class:`KioskUsageError` naming the first bad option."""
        if not _USER.fullmatch(self.user) or self.user == "root":
            raise KioskUsageError(f"--user {self.user!r}: a system user name such as "
                                  "sentepos (lower case, not root)")
        for flag, value in (("--data-dir", self.data_dir), ("--app-dir", self.app_dir)):
            if not _PATH.fullmatch(value) or "/../" in value + "/" or "/./" in value + "/":
                raise KioskUsageError(f"{flag} {value!r}: an absolute path at least two "
                                      "levels deep, letters, digits, '.', '_', '-' only")
        if self.data_dir == self.app_dir or self.data_dir.startswith(self.app_dir + "/"):
            raise KioskUsageError("--data-dir must be outside --app-dir (the app is read-only)")
        if not _TTY.fullmatch(self.tty):
            raise KioskUsageError(f"--tty {self.tty!r}: a virtual console, tty1 to tty63")
        if self.font_face not in FONT_FACES:
            raise KioskUsageError(f"--font-face {self.font_face!r}: one of "
                                  + ", ".join(FONT_FACES))
        if self.font_face.startswith("Terminus") and self.font_size not in TERMINUS_SIZES:
            raise KioskUsageError(f"--font-size {self.font_size!r}: Terminus comes in "
                                  + ", ".join(TERMINUS_SIZES))
        if not re.fullmatch(r"\d{1,2}x\d{1,2}", self.font_size):
            raise KioskUsageError(f"--font-size {self.font_size!r}: WIDTHxHEIGHT, e.g. 8x16")
        for flag, usb in (("--camera-usb", self.camera_usb),
                          ("--printer-usb", self.printer_usb)):
            if usb is not None and not _USB_ID.fullmatch(usb):
                raise KioskUsageError(f"{flag} {usb!r}: vendor:product as `lsusb` shows "
                                      "them, e.g. 046d:0825")


# ---------------------------------------------------------------- actions
@dataclass
class FileStep:
    """A file with this content and mode (``content=None``: the file must not exist)."""

    path: str
    content: bytes | None
    mode: int = 0o644
    owner: str | None = None  # user (and its group); None: root
    secret: bool = False  # never printed (provider passwords)
    keep: bool = False  # the merchant's data: uninstall leaves it
    create_only: bool = False  # never replace one that is there
    #: An edit of the file as it is: re-applied when written, since a command before it
    #: (apt installing console-setup) may have changed the file after the plan was made.
    edit: Callable[[bytes | None], bytes] | None = None
    before: bytes | None = None
    change: str = ""  # "", "create", "update", "mode", "owner", "remove"


@dataclass
class DirStep:
    path: str
    mode: int
    owner: str | None = None
    keep: bool = False
    change: str = ""


@dataclass
class CommandStep:
    argv: list[str]
    needed: bool
    done: str = ""  # said instead when it is not needed: why not
    why: str = ""  # said beside it when it runs: what it is for
    undo: list[str] | None = None  # what uninstall runs to take it back
    creates_tree: str | None = None  # a directory uninstall removes (the venv)
    check: bool = False  # reports, changes nothing; a failure is a warning
    device_only: bool = False  # probes only a running system can answer

    @property
    def change(self) -> str:
        return "run" if self.needed else ""


Step = FileStep | DirStep | CommandStep


@dataclass
class Section:
    title: str
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------- target
class Target:
    """The root being installed into; every absolute path is taken under it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def is_device(self) -> bool:
        return self.root == Path("/")

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def read(self, p: str) -> bytes | None:
        try:
            return self.path(p).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def mode(self, p: str) -> int | None:
        try:
            return self.path(p).stat().st_mode & 0o7777
        except (FileNotFoundError, NotADirectoryError):
            return None

    def owner_ok(self, p: str, user: str | None) -> bool:
        """Ownership is only checked (and set) on the device: a scratch root's owner is
        whoever runs the test."""
        if not self.is_device:
            return True
        import pwd

        want = 0
        if user is not None:
            try:
                want = pwd.getpwnam(user).pw_uid
            except KeyError:  # not created yet: it will be, and then the file is chowned
                return False
        return self.path(p).stat().st_uid == want

    def packages(self) -> set[str]:
        """Installed packages, read from dpkg's status file as dpkg-query does."""
        text = (self.read("/var/lib/dpkg/status") or b"").decode("utf-8", "replace")
        have = set()
        for stanza in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in stanza.splitlines()
                          if ": " in line and not line.startswith(" "))
            if fields.get("Status", "").endswith(" installed") and "Package" in fields:
                have.add(fields["Package"])
        return have

    def has_user(self, name: str) -> bool:
        text = (self.read("/etc/passwd") or b"").decode("utf-8", "replace")
        return any(line.split(":", 1)[0] == name for line in text.splitlines())

    def link(self, p: str) -> str | None:
        try:
            return os.readlink(self.path(p))
        except (FileNotFoundError, NotADirectoryError, OSError):
            return None

    def exists(self, p: str) -> bool:
        return os.path.lexists(self.path(p))


def masked(t: Target, unit: str) -> bool:
    return t.link(f"/etc/systemd/system/{unit}") == "/dev/null"


# ------------------------------------------------------------- rendering
def unit_template() -> str:
    """The repository's ``kiosk.service`` (shipped in the package as a symlink to it)."""
    from importlib import resources  # ~5 ms: not on every command's start-up

    return resources.files("sente_pos").joinpath("kiosk.service").read_text()


def render_unit(template: str, o: Options) -> str:
    """``sente-pos.service`` from the template, with this install's user, paths and tty.

    Every value replaced must be in the template: if it changed, fail here rather than
    install a unit that silently kept a default."""
    body = template[template.index("[Unit]"):]
    for old in ("/opt/sente-pos/bin/sente-pos", "/var/lib/sente-pos", "User=sentepos\n",
                "Group=sentepos\n", "getty@tty1.service", "/dev/tty1",
                "StateDirectory=sente-pos\n"):
        if old not in body:
            raise KioskError(f"kiosk.service no longer contains {old.strip()!r}: "
                             "update sente_pos/kiosk_plan.py")
    body = (body.replace("/opt/sente-pos", o.app_dir)
                .replace("/var/lib/sente-pos", o.data_dir)
                .replace("User=sentepos\n", f"User={o.user}\n")
                .replace("Group=sentepos\n", f"Group={o.user}\n")
                .replace("tty1", o.tty))
    if o.data_dir.startswith("/var/lib/") and o.data_dir.count("/") == 3:
        body = body.replace("StateDirectory=sente-pos\n",
                            f"StateDirectory={o.data_dir.removeprefix('/var/lib/')}\n")
    else:  # StateDirectory= only names directories under /var/lib
        body = re.sub(r"^StateDirectory(Mode)?=.*\n", "", body, flags=re.M)
    head = (f"# {UNIT_NAME}: Sente POS on {o.tty}, in place of the login prompt.\n"
            "# Written by `sente-pos kiosk install` from the kiosk.service template:\n"
            "# change its options and run it again rather than editing this file.\n"
            f"# If the app cannot run (start limit hit), OnFailure= brings the login back.\n\n")
    return head + body


def starter_config() -> bytes:
    return (
        "# Sente POS settings (README: Settings). Written by `sente-pos kiosk install`\n"
        "# because none was given: fill in the provider logins, then\n"
        f"# `systemctl restart {UNIT_NAME}`.\n"
        "\n[kiosk]\nenabled = true\ntheme = \"console\"\n"
        "\n[patasente]\n# username = \"\"\n# password = \"\"\n"
        "\n[pawacard]\n# username = \"\"\n# password = \"\"\n"
    ).encode()


def console_setup(before: bytes | None, o: Options) -> bytes:
    """``/etc/default/console-setup`` with UTF-8 and the font set, other lines kept."""
    want = {"CHARMAP": "UTF-8", "CODESET": "guess", "FONTFACE": o.font_face,
            "FONTSIZE": o.font_size}
    lines = (before or b"").decode().splitlines()
    out = []
    for line in lines:
        key = line.split("=", 1)[0].strip()
        if key in want and "=" in line and not line.lstrip().startswith("#"):
            out.append(f'{key}="{want.pop(key)}"')
        else:
            out.append(line)
    out += [f'{k}="{v}"' for k, v in want.items()]
    return ("\n".join(out) + "\n").encode()


def no_vt_switching() -> str:
    """Keymap lines that void every key the kernel binds to a console switch."""
    lines = []
    for code in (59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 87, 88):  # F1..F10, F11, F12
        for mods in ("alt", "alt shift", "altgr", "altgr shift", "control alt",
                     "control alt shift", "control altgr", "control altgr shift"):
            lines.append(f"{mods} keycode {code} = VoidSymbol")
    lines += ["alt keycode 105 = VoidSymbol",  # Alt+Left  (Decr_Console)
              "alt keycode 106 = VoidSymbol",  # Alt+Right (Incr_Console)
              "alt keycode 99 = VoidSymbol"]  # Alt+SysRq (Last_Console)
    return "\n".join(lines)


def with_block(before: bytes | None, block: str) -> bytes:
    """``before`` with our marked block (replaced if there, else appended)."""
    text = (before or b"").decode()
    text = re.sub(rf"{re.escape(BLOCK_BEGIN)}\n.*?{re.escape(BLOCK_END)}\n?", "", text,
                  flags=re.S)
    if text and not text.endswith("\n"):
        text += "\n"
    return f"{text}{BLOCK_BEGIN}\n{block}\n{BLOCK_END}\n".encode()


def kernel_cmdline(before: bytes) -> bytes:
    """The one line of ``cmdline.txt`` with our tokens (replacing other values of them)."""
    tokens = before.decode().split()
    keys = {t.split("=", 1)[0] for t in CMDLINE_TOKENS}
    kept = [t for t in tokens if t.split("=", 1)[0] not in keys]
    return (" ".join([*kept, *CMDLINE_TOKENS]) + "\n").encode()


# ----------------------------------------------------------------- source
def default_source() -> Path | None:
    """The source tree this runs from, if it is one (a checkout or an editable install)."""
    tree = Path(__file__).resolve().parent.parent
    return tree if _is_source_tree(tree) else None


def _is_source_tree(p: Path) -> bool:
    try:
        meta = tomllib.loads((p / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return bool(meta.get("project", {}).get("name") == "sente-pos")


def source_version(src: Path) -> str:
    if src.is_file():  # a wheel: sente_pos-0.1.0-py3-none-any.whl
        return src.name.split("-")[1]
    return str(tomllib.loads((src / "pyproject.toml").read_text())["project"]["version"])


def _installed_version(t: Target, app_dir: str) -> set[str]:
    found = t.path(app_dir).glob("lib/python3*/site-packages/sente_pos-*.dist-info")
    return {p.name.removeprefix("sente_pos-").removesuffix(".dist-info") for p in found}


def resolve_source(o: Options) -> Path | None:
    """The tree or wheel to install, or None when the app-dir venv is the one running."""
    if o.source is not None:
        src = Path(o.source).resolve()
        if not ((src.is_file() and src.suffix == ".whl" and src.name.startswith("sente_pos-"))
                or (src.is_dir() and _is_source_tree(src))):
            raise KioskUsageError(f"--source {o.source}: neither a sente-pos source tree "
                                  "nor a sente_pos wheel")
        return src
    return default_source()


def read_config(o: Options) -> bytes | None:
    if o.config is None:
        return None
    try:
        data = Path(o.config).read_bytes()
        tomllib.loads(data.decode())
    except OSError as exc:
        raise KioskUsageError(f"--config {o.config}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KioskUsageError(f"--config {o.config}: not valid TOML ({exc})") from exc
    return data


# ------------------------------------------------------------------- plan
def _systemctl(*args: str) -> list[str]:
    return ["systemctl", *args]


def plan_install(o: Options, t: Target, *, running_prefix: str | None = None) -> list[Section]:
    """The README's eight steps for this target, each action probed: needed or not."""
    import sys

    o.validate()
    config = read_config(o)
    src = resolve_source(o)
    unit_path = f"/etc/systemd/system/{UNIT_NAME}"
    sections: list[Section] = []

    # 1. System packages and the service user
    s = Section("System packages and the service user")
    missing = [p for p in PACKAGES if p not in t.packages()]
    s.steps.append(CommandStep(["apt-get", "update"], bool(missing),
                               "" if missing else "packages installed: " + " ".join(PACKAGES)))
    if missing:
        s.steps.append(CommandStep(["apt-get", "install", "-y", *missing], True))
    s.steps.append(CommandStep(
        ["useradd", "--system", "--user-group", "--home-dir", o.data_dir,
         "--shell", "/usr/sbin/nologin", o.user],
        not t.has_user(o.user), f"user {o.user} exists"))
    sections.append(s)

    # 2. The app in its own virtual environment
    s = Section(f"The app in its own virtual environment under {o.app_dir}")
    have_venv = t.exists(f"{o.app_dir}/bin/python")
    s.steps.append(CommandStep(["python3", "-m", "venv", "--upgrade-deps", o.app_dir],
                               not have_venv, f"{o.app_dir} exists",
                               creates_tree=o.app_dir))
    running_here = (running_prefix or sys.prefix) == str(t.path(o.app_dir))
    if src is None:
        if not running_here and not _installed_version(t, o.app_dir):
            raise KioskUsageError(f"--source: the sente-pos source tree or wheel to install "
                                  f"into {o.app_dir} (this copy is not a source tree)")
        s.steps.append(CommandStep([f"{o.app_dir}/bin/pip", "install"], False,
                                   f"sente-pos is installed in {o.app_dir}"))
    else:
        version = source_version(src)
        installed = version in _installed_version(t, o.app_dir)
        constraints = o.constraints or (str(src / "constraints-pi.txt")
                                        if (src / "constraints-pi.txt").is_file() else None)
        argv = [f"{o.app_dir}/bin/pip", "install", "--upgrade"]
        if constraints:
            argv += ["-c", constraints]
        s.steps.append(CommandStep([*argv, f"{src}[{EXTRAS}]"], o.reinstall or not installed,
                                   f"sente-pos {version} is installed (--reinstall to "
                                   "install it again)"))
    sections.append(s)

    # 3. Data directory and configuration
    s = Section("Data directory and configuration")
    s.steps.append(DirStep(o.data_dir, 0o700, o.user, keep=True))
    s.steps.append(FileStep(f"{o.data_dir}/config.toml", config or starter_config(), 0o600,
                            o.user, secret=config is not None, keep=True, create_only=True))
    if config is not None:
        kiosk = tomllib.loads(config.decode()).get("kiosk", {})
        if kiosk.get("enabled") is not True:
            s.notes.append("the config does not set [kiosk] enabled = true: the cashier "
                           "could leave the app")
    sections.append(s)

    # 4. The unit, in place of the login on the tty
    s = Section(f"The unit, in place of the login on {o.tty}")
    old_unit = "/etc/systemd/system/kiosk.service"  # the README's manual install, before
    if b"sente-pos" in (t.read(old_unit) or b""):
        s.steps.append(CommandStep(
            _systemctl("disable", "--now", "kiosk.service"),
            t.exists("/etc/systemd/system/multi-user.target.wants/kiosk.service"),
            "kiosk.service is not enabled", undo=_systemctl("enable", "kiosk.service"),
            why=f"the manual install's unit, replaced by {UNIT_NAME}"))
        s.steps.append(FileStep(old_unit, None))
    s.steps.append(FileStep(unit_path, render_unit(unit_template(), o).encode()))
    # No automatic login, ever: the fallback login must ask for a password.
    s.steps.append(FileStep(f"/etc/systemd/system/getty@{o.tty}.service.d/autologin.conf",
                            None))
    default = t.link("/etc/systemd/system/default.target")
    previous = os.path.basename(default) if default else "graphical.target"
    s.steps.append(CommandStep(_systemctl("set-default", "multi-user.target"),
                               previous != "multi-user.target", "boots to the console",
                               undo=_systemctl("set-default", previous)))
    sections.append(s)

    # 5. Console font
    s = Section("Console font")
    s.steps.append(FileStep("/etc/default/console-setup",
                            console_setup(t.read("/etc/default/console-setup"), o),
                            edit=lambda b: console_setup(b, o)))
    sections.append(s)

    # 6. Lock-down
    s = Section("Keep the cashier in the app: VT switching, Ctrl-Alt-Del, SysRq")
    s.steps.append(FileStep("/etc/systemd/logind.conf.d/sente-pos.conf",
                            b"# No login on other consoles (sente-pos kiosk install).\n"
                            b"[Login]\nNAutoVTs=0\nReserveVT=0\n"))
    s.steps.append(FileStep("/etc/console-setup/remap.inc",
                            with_block(t.read("/etc/console-setup/remap.inc"), no_vt_switching()),
                            edit=lambda b: with_block(b, no_vt_switching())))
    s.steps.append(FileStep("/etc/systemd/system.conf.d/sente-pos.conf",
                            b"# No forced reboot from Ctrl-Alt-Del pressed 7 times in 2 s.\n"
                            b"[Manager]\nCtrlAltDelBurstAction=none\n"))
    s.steps.append(FileStep("/etc/sysctl.d/90-sente-pos.conf",
                            b"# No magic SysRq, no kernel messages over the screen.\n"
                            b"kernel.sysrq = 0\nkernel.printk = 3 4 1 3\n"))
    for unit in ("kbrequest.target", "ctrl-alt-del.target"):
        s.steps.append(CommandStep(_systemctl("mask", unit), not masked(t, unit),
                                   f"{unit} is masked", undo=_systemctl("unmask", unit)))
    cmdline = o.cmdline or next((c for c in CMDLINE_CANDIDATES if t.exists(c)), None)
    before = t.read(cmdline) if cmdline else None
    if cmdline and before is not None:
        s.steps.append(FileStep(cmdline, kernel_cmdline(before), t.mode(cmdline) or 0o755,
                                edit=lambda b: kernel_cmdline(b or b"")))
    else:
        s.notes.append("no kernel command line (" + (cmdline or " or ".join(CMDLINE_CANDIDATES))
                       + "): not a Raspberry Pi? add " + " ".join(CMDLINE_TOKENS) + " yourself")
    sections.append(s)

    # 7./8. Camera and printer permissions (only with their USB ids)
    s = Section("Camera and printer permissions")
    if o.camera_usb:
        vid, pid = o.camera_usb.split(":")
        s.steps.append(FileStep("/etc/udev/rules.d/60-sente-pos-camera.rules", (
            "# The counter's camera as /dev/pos-camera (camera.device = \"/dev/pos-camera\").\n"
            f'SUBSYSTEM=="video4linux", ATTRS{{idVendor}}=="{vid}", '
            f'ATTRS{{idProduct}}=="{pid}", ATTR{{index}}=="0", SYMLINK+="pos-camera"\n'
        ).encode()))
    if o.printer_usb:
        vid, pid = o.printer_usb.split(":")
        s.steps.append(FileStep("/etc/udev/rules.d/60-sente-pos-printer.rules", (
            "# The receipt printer over libusb for the lp group (printer.kind = \"usb\").\n"
            f'SUBSYSTEM=="usb", ENV{{DEVTYPE}}=="usb_device", ATTR{{idVendor}}=="{vid}", '
            f'ATTR{{idProduct}}=="{pid}", MODE="0660", GROUP="lp"\n').encode()))
        s.steps.append(FileStep("/etc/modprobe.d/sente-pos-no-usblp.conf",
                                b"# The printer is driven over libusb: keep usblp off it.\n"
                                b"blacklist usblp\n"))
    if not (o.camera_usb or o.printer_usb):
        s.notes.append("cameras (video), usblp and serial printers (lp, dialout) need no rule; "
                       "--camera-usb / --printer-usb VID:PID add a stable name / libusb access")
    sections.append(s)

    probe_after_changes(sections, t, o, unit_path)
    return sections


def changed_paths(sections: list[Section]) -> set[str]:
    return {st.path for sec in sections for st in sec.steps
            if isinstance(st, FileStep | DirStep) and st.change}


def probe_after_changes(sections: list[Section], t: Target, o: Options, unit_path: str) -> None:
    """Decide each file's change, then the commands that follow from changes: reloads,
    enabling the unit, starting it, and the doctor's check."""
    for sec in sections:
        for st in sec.steps:
            if isinstance(st, FileStep):
                st.before = t.read(st.path)
                st.change = file_change(st, t)
            elif isinstance(st, DirStep):
                mode = t.mode(st.path)
                st.change = ("create" if mode is None else "mode" if mode != st.mode
                             else "" if t.owner_ok(st.path, st.owner) else "owner")
    changed = changed_paths(sections)
    any_change = bool(changed) or any(isinstance(st, CommandStep) and st.needed
                                      for sec in sections for st in sec.steps)

    def touched(*prefixes: str) -> bool:
        return any(p.startswith(prefixes) for p in changed)

    svc = Section(f"Start {UNIT_NAME}")
    wants = "/etc/systemd/system/{}.wants/{}"
    svc.steps.append(CommandStep(_systemctl("daemon-reload"), touched("/etc/systemd/"),
                                 "no unit or drop-in changed"))
    getty = f"getty@{o.tty}.service"
    svc.steps.append(CommandStep(_systemctl("disable", getty),
                                 t.exists(wants.format("getty.target", getty)),
                                 f"{getty} is disabled (not masked: OnFailure= starts it)",
                                 undo=_systemctl("enable", "--now", getty)))
    svc.steps.append(CommandStep(_systemctl("enable", UNIT_NAME),
                                 not t.exists(wants.format("multi-user.target", UNIT_NAME)),
                                 f"{UNIT_NAME} is enabled",
                                 undo=_systemctl("disable", "--now", UNIT_NAME)))
    if touched("/etc/default/console-setup", "/etc/console-setup/"):
        svc.steps.append(CommandStep(["setupcon", "--save-only"], True,
                                     why="rebuild the console font and keymap used at boot"))
    if touched("/etc/sysctl.d/"):
        svc.steps.append(CommandStep(["sysctl", "-p", "/etc/sysctl.d/90-sente-pos.conf"], True))
    if touched("/etc/udev/", "/etc/modprobe.d/"):
        svc.steps.append(CommandStep(["udevadm", "control", "--reload"], True))
        svc.steps.append(CommandStep(["udevadm", "trigger"], True))
    if any_change:
        svc.steps.append(CommandStep(
            ["runuser", "-u", o.user, "--", "env", f"SENTE_POS_HOME={o.data_dir}",
             f"{o.app_dir}/bin/sente-pos", "doctor"], True,
            why="camera, printer, link, clock and disk before the first start", check=True))
    app_changed = any(isinstance(st, CommandStep) and st.needed and st.argv[:2] == [
        f"{o.app_dir}/bin/pip", "install"] for sec in sections for st in sec.steps)
    svc.steps.append(_start_step(t, o, restart=unit_path in changed or app_changed))
    sections.append(svc)


def file_change(st: FileStep, t: Target) -> str:
    if st.content is None:
        return "remove" if t.exists(st.path) else ""
    if st.before is None:
        return "create"
    if st.create_only:
        return ""
    if st.before != st.content:
        return "update"
    if t.mode(st.path) != st.mode:
        return "mode"
    return "" if t.owner_ok(st.path, st.owner) else "owner"


def _start_step(t: Target, o: Options, *, restart: bool) -> CommandStep:
    if not o.start:
        return CommandStep(_systemctl("start", UNIT_NAME), False, "--no-start: it starts "
                           "at the next boot")
    if not t.is_device:
        return CommandStep(_systemctl("start", UNIT_NAME), True, device_only=True)
    try:
        here = os.ttyname(0)
    except OSError:
        here = ""
    if here == f"/dev/{o.tty}":
        return CommandStep(_systemctl("start", UNIT_NAME), False,
                           f"run from {o.tty} itself, whose login it would end: reboot, or "
                           f"`systemctl start {UNIT_NAME}` over SSH")
    try:
        active = subprocess.run(_systemctl("is-active", "--quiet", UNIT_NAME),
                                check=False).returncode == 0
    except OSError:  # no systemctl: the start below fails with a clear message
        active = False
    if active:
        return CommandStep(_systemctl("restart", UNIT_NAME), restart,
                           f"{UNIT_NAME} is running", why="the unit or the app changed")
    return CommandStep(_systemctl("start", UNIT_NAME), True)
