"""``sente-pos kiosk install | uninstall``: a Raspberry Pi boots into the counter.

The plan (``sente_pos.kiosk_plan``) is printed by ``--dry-run`` and applied by install:
files written atomically with their modes, commands run only when their probe says they
are needed, so a second run changes nothing and says so. ``--root DIR`` acts on a
scratch root: every path is taken under DIR and commands (which would act on this
machine) are printed, not run. Every change is recorded in a manifest under
``/var/lib/sente-pos-kiosk`` (with a backup of each file it replaced), and uninstall
takes back exactly that. The data directory (journal, config, device key) and the
service user are never removed: a journal may still hold unsent sales.

Standard library only (see ``kiosk_plan``): ``sudo python3 -m sente_pos.kiosk install``
works from a source tree on a Pi that has nothing else installed yet.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sente_pos.kiosk_plan import (
    STATE_DIR,
    UNIT_NAME,
    CommandStep,
    DirStep,
    FileStep,
    KioskError,
    KioskUsageError,
    Options,
    Section,
    Target,
    file_change,
    plan_install,
)

MANIFEST = f"{STATE_DIR}/manifest.json"
BACKUPS = f"{STATE_DIR}/backup"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Report:
    """What the person sees: lines as they happen, or one JSON document at the end."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.events: list[dict[str, Any]] = []
        self.warnings: list[str] = []

    def line(self, text: str) -> None:
        if not self.as_json:
            print(text, flush=True)

    def event(self, section: str, status: str, what: str, text: str, **extra: Any) -> None:
        self.events.append({"section": section, "status": status, "what": what, **extra})
        self.line(text)

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        if not self.as_json:
            print(f"warning: {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------- manifest
class Manifest:
    """What install changed, so that uninstall takes back exactly that."""

    def __init__(self, t: Target, *, load: bool = True) -> None:
        self.t = t
        try:
            raw = t.read(MANIFEST) if load else None
        except PermissionError as exc:  # root's 0600 file, read by another user
            raise KioskUsageError(f"reading {MANIFEST} needs root: run it with sudo") from exc
        data: dict[str, Any] = json.loads(raw) if raw else {}
        self.files: dict[str, dict[str, Any]] = data.get("files", {})
        self.dirs: list[str] = data.get("dirs", [])
        self.undo: list[list[str]] = data.get("undo", [])
        self.trees: list[str] = data.get("trees", [])
        self.packages: list[str] = data.get("packages", [])
        self.kept: list[str] = data.get("kept", [])
        self.options: dict[str, Any] = data.get("options", {})

    @property
    def empty(self) -> bool:
        return not (self.files or self.dirs or self.undo or self.trees)

    def save(self) -> None:
        doc = {"version": 1, "options": self.options, "files": self.files, "dirs": self.dirs,
               "undo": self.undo, "trees": self.trees, "packages": self.packages,
               "kept": self.kept}
        self.note_dirs(_mkdirs(self.t, STATE_DIR, mode=0o700))
        _write(self.t.path(MANIFEST), json.dumps(doc, indent=1).encode(), 0o600)

    def note_dirs(self, created: list[str]) -> None:
        """Directories install created (its own state directory apart: removed whole)."""
        for d in created:
            if d != STATE_DIR and not d.startswith(STATE_DIR + "/") and d not in self.dirs:
                self.dirs.append(d)

    def backup(self, path: str, before: bytes | None, mode: int | None) -> None:
        """Remember a file as it was before install first touched it."""
        if path in self.files:
            return  # the first original is the one uninstall restores
        entry: dict[str, Any] = {"before": None, "mode": mode}
        if before is not None:
            rel = f"{BACKUPS}{path}"
            _mkdirs(self.t, str(Path(rel).parent), mode=0o700)
            _write(self.t.path(rel), before, 0o600)
            entry["before"] = rel
        self.files[path] = entry


# ---------------------------------------------------------- file system
def _write(dest: Path, data: bytes, mode: int, owner: str | None = None,
           chown: bool = False) -> None:
    """Write atomically: a power cut leaves the old file or the new one, never half."""
    tmp = dest.with_name(f".{dest.name}.sente-pos-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        if chown:
            _chown_fd(fd, owner)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)


def _ids(owner: str | None) -> tuple[int, int]:
    if owner is None:
        return 0, 0
    import pwd

    pw = pwd.getpwnam(owner)
    return pw.pw_uid, pw.pw_gid


def _chown_fd(fd: int, owner: str | None) -> None:
    os.fchown(fd, *_ids(owner))


def _mkdirs(t: Target, path: str, *, mode: int = 0o755) -> list[str]:
    """Create the missing directories down to ``path`` (it gets ``mode``, the ones above
    it 0755); returns those created, for the manifest."""
    parts = Path(path).parts[1:]
    created = []
    for i in range(1, len(parts) + 1):
        p = "/" + "/".join(parts[:i])
        if not t.path(p).is_dir():
            want = mode if i == len(parts) else 0o755
            t.path(p).mkdir(mode=want)
            os.chmod(t.path(p), want)  # whatever the umask
            created.append(p)
    return created


def _octal(mode: int) -> str:
    return f"{mode:04o}"


def _owner_text(owner: str | None) -> str:
    return f"{owner}:{owner}" if owner else "root:root"


# --------------------------------------------------------------- install
def _describe(st: FileStep | DirStep | CommandStep) -> str:
    if isinstance(st, CommandStep):
        return shlex.join(st.argv)
    return st.path


def show_content(report: Report, st: FileStep) -> None:
    if st.content is None:
        return
    if st.secret:
        report.line(f"        ({len(st.content)} bytes from --config, not shown: it holds "
                    "the provider passwords)")
        return
    for line in st.content.decode().splitlines():
        report.line(f"        | {line}")


def install(o: Options, root: Path, *, dry_run: bool, report: Report) -> int:
    t = Target(root)
    sections = plan_install(o, t)
    where = "" if t.is_device else f" in the scratch root {t.root}"
    report.line(f"sente-pos kiosk install{where}" + (" (dry run: nothing is changed)"
                                                     if dry_run else ""))
    m = Manifest(t, load=not dry_run)  # a dry run reads nothing of root's
    m.options = {k: v for k, v in vars(o).items() if v is not None}
    changes = skipped_cmds = 0
    for n, sec in enumerate(sections, 1):
        report.line(f"\n{n}. {sec.title}")
        for note in sec.notes:
            report.line(f"   note  {note}")
        for st in sec.steps:
            did = _install_step(st, sec, t, m, dry_run=dry_run, report=report)
            if did == "changed":
                changes += 1
            elif did == "not-run":
                skipped_cmds += 1
    report.line("")
    if dry_run:
        todo = sum(1 for sec in sections for st in sec.steps if st.change)
        report.line(f"dry run: {todo} change(s) would be made" if todo
                    else "dry run: nothing to change, the kiosk is installed as asked")
        return 0
    if changes:
        report.line(f"done: {changes} change(s) made; manifest {MANIFEST} "
                    f"(`sente-pos kiosk uninstall` takes them back)")
    else:
        report.line("nothing changed: the kiosk is already installed as asked")
    if skipped_cmds:
        report.line(f"{skipped_cmds} command(s) not run in a scratch root: they act on "
                    "the device")
    if changes and t.is_device:
        report.line("reboot once to apply the console keymap, logind, SysRq and the kernel "
                    "command line, and to check it all")
    return 0


def _install_step(st: FileStep | DirStep | CommandStep, sec: Section, t: Target, m: Manifest,
                  *, dry_run: bool, report: Report) -> str:
    title = sec.title
    if isinstance(st, FileStep) and st.edit is not None and not dry_run:
        st.before = t.read(st.path)  # the file as it is now, after the commands before it
        st.content = st.edit(st.before)
        st.change = file_change(st, t)
    if isinstance(st, CommandStep):
        cmd = shlex.join(st.argv)
        if not st.needed:
            report.event(title, "ok", cmd, f"   ok    {st.done or cmd}", argv=st.argv)
            return "ok"
        if dry_run:
            report.event(title, "would-run", cmd, f"   run   {cmd}"
                         + (f"   # {st.why}" if st.why else ""), argv=st.argv)
            return "planned"
        if not t.is_device:
            report.event(title, "not-run", cmd, f"   print {cmd}   (not run: scratch root)",
                         argv=st.argv)
            return "not-run"
        return _run(st, title, m, report)
    if not st.change:
        gone = isinstance(st, FileStep) and st.content is None
        report.event(title, "ok", st.path, f"   ok    {st.path}" + (" absent" if gone else ""))
        return "ok"
    if isinstance(st, DirStep):
        text = (f"   dir   {st.path}  ({st.change}: {_octal(st.mode)} "
                f"{_owner_text(st.owner)})")
        report.event(title, "would-change" if dry_run else "changed", st.path, text,
                     mode=_octal(st.mode), owner=_owner_text(st.owner), change=st.change)
        if not dry_run:
            _apply_dir(st, t, m)
        return "changed"
    verb = "remove" if st.content is None else "write"
    text = (f"   {verb:<5} {st.path}" if st.content is None else
            f"   {verb:<5} {st.path}  ({st.change}: {_octal(st.mode)} {_owner_text(st.owner)})")
    extra: dict[str, Any] = {"change": st.change}
    if st.content is not None:
        extra.update(mode=_octal(st.mode), owner=_owner_text(st.owner))
        if not st.secret:
            extra["content"] = st.content.decode()
    report.event(title, "would-change" if dry_run else "changed", st.path, text, **extra)
    if dry_run:
        show_content(report, st)
        return "planned"
    _apply_file(st, t, m)
    return "changed"


def _apply_dir(st: DirStep, t: Target, m: Manifest) -> None:
    m.note_dirs(_mkdirs(t, str(Path(st.path).parent)))
    p = t.path(st.path)
    if not p.is_dir():
        p.mkdir(mode=st.mode)
    os.chmod(p, st.mode)
    if t.is_device:
        os.chown(p, *_ids(st.owner))
    if st.path not in m.kept:
        m.kept.append(st.path)
    m.save()


def _apply_file(st: FileStep, t: Target, m: Manifest) -> None:
    p = t.path(st.path)
    if st.keep:
        if st.path not in m.kept:
            m.kept.append(st.path)
    else:
        m.backup(st.path, st.before, t.mode(st.path))
    if st.content is None:
        p.unlink()
        m.files[st.path]["sha256"] = None
    else:
        m.note_dirs(_mkdirs(t, str(Path(st.path).parent)))
        _write(p, st.content, st.mode, st.owner, chown=t.is_device)
        if not st.keep:
            m.files[st.path]["sha256"] = _sha(st.content)
    m.save()


def _run(st: CommandStep, title: str, m: Manifest, report: Report) -> str:
    cmd = shlex.join(st.argv)
    report.line(f"   run   {cmd}")
    try:
        # The command's own output goes to stderr: with --json, stdout is the document.
        rc = subprocess.run(st.argv, stdout=sys.stderr, check=False).returncode
    except OSError as exc:
        rc, why = -1, f"cannot run it: {exc.strerror or exc}"
    else:
        why = f"exit code {rc}"
    if rc != 0:
        if st.check:
            report.warn(f"`{cmd}` found problems ({why}): fix them, then "
                        f"`systemctl restart {UNIT_NAME}`")
            report.events.append({"section": title, "status": "warning", "what": cmd})
            return "ok"
        raise KioskError(f"`{cmd}` failed ({why}); the steps after it were not done. Fix it "
                         "and run `sente-pos kiosk install` again (or `sente-pos kiosk "
                         "uninstall` to take back what was done)")
    report.events.append({"section": title, "status": "ran", "what": cmd, "argv": st.argv})
    if st.check:
        return "ok"
    if st.undo and st.undo not in m.undo:
        m.undo.append(st.undo)
    if st.creates_tree and st.creates_tree not in m.trees:
        m.trees.append(st.creates_tree)
    if st.argv[:2] == ["apt-get", "install"]:
        m.packages += [p for p in st.argv[3:] if p not in m.packages]
    m.save()
    return "changed"


# ------------------------------------------------------------- uninstall
def uninstall(root: Path, *, dry_run: bool, report: Report) -> int:
    t = Target(root)
    m = Manifest(t)
    where = "" if t.is_device else f" in the scratch root {t.root}"
    report.line(f"sente-pos kiosk uninstall{where}"
                + (" (dry run: nothing is changed)" if dry_run else ""))
    if m.empty:
        report.line(f"nothing to undo: no install recorded in {MANIFEST}")
        return 0
    title = "uninstall"
    # The service first (stop it, the login back), then the files, then the reloads.
    for argv in reversed(m.undo):
        _uninstall_cmd(argv, t, title, dry_run=dry_run, report=report)
    restored: list[str] = []
    for path in reversed(list(m.files)):
        if _restore(path, m, t, title, dry_run=dry_run, report=report):
            restored.append(path)
    for tree in m.trees:
        report.event(title, "removed", tree, f"   rm -r {tree}   (the app's venv)")
        if not dry_run:
            shutil.rmtree(t.path(tree), ignore_errors=True)
    if any(p.startswith("/etc/systemd/") for p in restored):
        _uninstall_cmd(["systemctl", "daemon-reload"], t, title, dry_run=dry_run, report=report)
    if any(p.startswith(("/etc/default/console-setup", "/etc/console-setup/")) for p in restored):
        _uninstall_cmd(["setupcon", "--save-only"], t, title, dry_run=dry_run, report=report)
    if any(p.startswith(("/etc/udev/", "/etc/modprobe.d/")) for p in restored):
        _uninstall_cmd(["udevadm", "control", "--reload"], t, title, dry_run=dry_run,
                       report=report)
    for kept in m.kept:
        report.line(f"   kept  {kept}   (the merchant's data: remove it by hand once the "
                    "journal is uploaded)")
    if m.kept:
        report.line(f"   kept  user {m.options.get('user', 'sentepos')}   (owns the data)")
    if m.packages:
        report.line("   kept  packages " + " ".join(m.packages)
                    + "   (apt-get remove them if nothing else needs them)")
    if dry_run:
        for d in reversed(m.dirs):
            report.event(title, "would-remove", d, f"   rmdir {d}   (if empty by then)")
        return 0
    left = {p: e for p, e in m.files.items() if p not in restored}
    if left:
        m.files, m.undo, m.trees = left, [], []
        m.save()
    else:
        shutil.rmtree(t.path(STATE_DIR), ignore_errors=True)
    for d in reversed(m.dirs):  # those install created, if nothing else is in them now
        p = t.path(d)
        if p.is_dir() and not any(p.iterdir()):
            report.event(title, "removed", d, f"   rmdir {d}")
            p.rmdir()
    if left:
        report.line(f"\ndone, except {len(left)} file(s) changed since install (left as "
                    f"they are; originals under {BACKUPS})")
    else:
        report.line("\ndone: everything install changed is taken back"
                    + ("; reboot to finish" if t.is_device else ""))
    return 0


def _uninstall_cmd(argv: list[str], t: Target, title: str, *, dry_run: bool,
                   report: Report) -> None:
    cmd = shlex.join(argv)
    if dry_run or not t.is_device:
        why = "" if dry_run else "   (not run: scratch root)"
        report.event(title, "would-run" if dry_run else "not-run", cmd,
                     f"   {'run  ' if dry_run else 'print'} {cmd}{why}", argv=argv)
        return
    report.line(f"   run   {cmd}")
    try:
        rc = subprocess.run(argv, stdout=sys.stderr, check=False).returncode
    except OSError as exc:
        rc = -1
        report.warn(f"`{cmd}`: {exc.strerror or exc}")
    if rc:
        report.warn(f"`{cmd}` failed (exit code {rc}): do it by hand")


def _restore(path: str, m: Manifest, t: Target, title: str, *, dry_run: bool,
             report: Report) -> bool:
    entry = m.files[path]
    now = t.read(path)
    ours = entry.get("sha256")  # None: install removed the file
    if (now is not None) if ours is None else (now is None or _sha(now) != ours):
        report.warn(f"{path} changed since install: left as it is")
        return False
    before = entry["before"]
    if before is None:
        if now is not None:
            report.event(title, "removed", path, f"   rm    {path}")
            if not dry_run:
                t.path(path).unlink()
        return True
    report.event(title, "restored", path, f"   put back {path}")
    if not dry_run:
        data = t.read(before)
        if data is None:
            report.warn(f"{path}: its backup {before} is gone: left as it is")
            return False
        _mkdirs(t, str(Path(path).parent))
        _write(t.path(path), data, entry.get("mode") or 0o644)
    return True


# ------------------------------------------------------------------ CLI
def _options(args: argparse.Namespace) -> Options:
    return Options(user=args.user, data_dir=args.data_dir, app_dir=args.app_dir, tty=args.tty,
                   font_face=args.font_face, font_size=args.font_size, source=args.source,
                   constraints=args.constraints, config=args.config,
                   camera_usb=args.camera_usb.lower() if args.camera_usb else None,
                   printer_usb=args.printer_usb.lower() if args.printer_usb else None,
                   cmdline=args.cmdline, reinstall=args.reinstall, start=args.start)


def cmd_kiosk(args: argparse.Namespace, _settings: Any = None) -> int:
    """Both subcommands; exit codes as the README's: 0 done, 2 refused, 1 anything else."""
    report = Report(as_json=args.json)
    root = Path(args.root) if args.root else Path("/")
    code = 0
    try:
        if args.root and not root.is_dir():
            raise KioskUsageError(f"--root {args.root}: not a directory")
        if not args.root and not args.dry_run and os.geteuid() != 0:
            raise KioskUsageError(f"kiosk {args.action} changes the system and needs root: "
                                  "run it with sudo, or see what it would do with --dry-run "
                                  "(or --root DIR for a scratch root)")
        if args.action == "install":
            code = install(_options(args), root, dry_run=args.dry_run, report=report)
        else:
            code = uninstall(root, dry_run=args.dry_run, report=report)
    except KioskError as exc:
        code = exc.exit_code
        report.warnings.append(exc.message)
        if not args.json:
            print(f"error: {exc.message}", file=sys.stderr)
    except OSError as exc:
        code = 1
        msg = f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
        report.warnings.append(msg)
        if not args.json:
            print(f"error: {msg}", file=sys.stderr)
    if args.json:
        print(json.dumps({"action": args.action, "root": str(root), "dry_run": args.dry_run,
                          "exit_code": code, "steps": report.events,
                          "warnings": report.warnings}))
    return code


def add_kiosk_commands(sub: Any) -> None:
    k = sub.add_parser("kiosk", help=f"install or remove the Raspberry Pi kiosk "
                       f"({UNIT_NAME} on tty1; root)")
    ks = k.add_subparsers(dest="action", required=True)
    d = Options()
    for name, help_ in (("install", "boot into the counter: packages, user, venv, data dir, "
                         f"{UNIT_NAME} in place of the login, font, lock-down (idempotent)"),
                        ("uninstall", "take back what install did (the data directory and "
                         "its user are kept)")):
        sp = ks.add_parser(name, help=help_)
        sp.set_defaults(fn=cmd_kiosk)
        sp.add_argument("--dry-run", action="store_true",
                        help="print every file (contents, mode) and command; change nothing")
        sp.add_argument("--root", metavar="DIR",
                        help="act on a scratch root: paths under DIR, commands printed only")
        sp.add_argument("--json", action="store_true", help="print one JSON document")
        if name == "uninstall":
            continue
        sp.add_argument("--user", default=d.user, help=f"service user (default {d.user})")
        sp.add_argument("--data-dir", default=d.data_dir,
                        help=f"SENTE_POS_HOME of the kiosk (default {d.data_dir})")
        sp.add_argument("--app-dir", default=d.app_dir,
                        help=f"the app's virtual environment (default {d.app_dir})")
        sp.add_argument("--tty", default=d.tty, help=f"the console (default {d.tty})")
        sp.add_argument("--font-face", default=d.font_face,
                        help=f"console font (default {d.font_face})")
        sp.add_argument("--font-size", default=d.font_size,
                        help=f"default {d.font_size} (480x320: 80x26 cells); 800x480: 10x20")
        sp.add_argument("--config", metavar="FILE",
                        help="the merchant's config.toml, copied 0600 if none is there yet")
        sp.add_argument("--source", metavar="PATH",
                        help="source tree or wheel to install (default: this source tree)")
        sp.add_argument("--constraints", metavar="FILE",
                        help="pip constraints (default: the source's constraints-pi.txt)")
        sp.add_argument("--reinstall", action="store_true",
                        help="run pip again even if this version is installed")
        sp.add_argument("--camera-usb", metavar="VID:PID",
                        help="udev rule: this UVC camera as /dev/pos-camera")
        sp.add_argument("--printer-usb", metavar="VID:PID",
                        help="udev rule: this printer over libusb for lp, usblp kept off")
        sp.add_argument("--cmdline", metavar="FILE",
                        help="kernel command line (default /boot/firmware/cmdline.txt)")
        sp.add_argument("--no-start", dest="start", action="store_false",
                        help=f"enable {UNIT_NAME} but do not start it now")


def main(argv: list[str] | None = None) -> int:
    """``python3 -m sente_pos.kiosk``: the same commands before sente-pos is installed."""
    p = argparse.ArgumentParser(prog="python3 -m sente_pos.kiosk")
    add_kiosk_commands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["kiosk", *(sys.argv[1:] if argv is None else argv)])
    return cmd_kiosk(args)


if __name__ == "__main__":
    sys.exit(main())
