"""``sente-pos kiosk install | uninstall`` into a scratch root (``--root``), never this machine.

The scratch root is seeded like a fresh Raspberry Pi OS Lite: a console-setup file, a
kernel command line, an autologin drop-in, getty enabled on tty1, dpkg's status file and
/etc/passwd, so the probes and the edits of existing files are exercised."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sente_pos.cli import main
from sente_pos.kiosk_plan import UNIT_NAME, Options, render_unit, unit_template
from tests.test_kiosk_unit import parse_unit

ROOT = Path(__file__).resolve().parent.parent
UNIT = f"etc/systemd/system/{UNIT_NAME}"
MANIFEST = "var/lib/sente-pos-kiosk/manifest.json"
CONSOLE_SETUP = 'ACTIVE_CONSOLES="/dev/tty[1-6]"\nCHARMAP="ISO-8859-1"\nFONTFACE="Fixed"\n'
CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootwait loglevel=7\n"
AUTOLOGIN = "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin pi --noclear %I $TERM\n"
REMAP = "# the owner's own key\nkeycode 58 = Control\n"


def seed(root: Path) -> Path:
    files = {
        "etc/default/console-setup": CONSOLE_SETUP,
        "boot/firmware/cmdline.txt": CMDLINE,
        "etc/systemd/system/getty@tty1.service.d/autologin.conf": AUTOLOGIN,
        "etc/console-setup/remap.inc": REMAP,
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000::/home/pi:/bin/bash\n",
        "var/lib/dpkg/status": "Package: kbd\nStatus: install ok installed\n\n"
                               "Package: libzbar0\nStatus: deinstall ok config-files\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "boot/firmware/cmdline.txt").chmod(0o755)  # FAT: everything is 0755
    wants = root / "etc/systemd/system/getty.target.wants"
    wants.mkdir(parents=True)
    (wants / "getty@tty1.service").symlink_to("/lib/systemd/system/getty@.service")
    (root / "etc/systemd/system/default.target").symlink_to(
        "/lib/systemd/system/graphical.target")
    return root


@pytest.fixture
def pi(tmp_path: Path) -> Path:
    return seed(tmp_path / "pi")


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under root: its mode and content (a symlink: its target)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = (0, "-> " + os.readlink(p))
            elif p.is_dir():
                out[rel] = (p.stat().st_mode & 0o7777, "<dir>")
            else:
                out[rel] = (p.stat().st_mode & 0o7777, p.read_text())
    return out


def kiosk(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["kiosk", *args])
    out, err = capsys.readouterr()
    return code, out, err


def install_json(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> dict:
    code, out, err = kiosk(capsys, "install", "--root", str(root), "--json", *args)
    assert code == 0, err
    doc: dict = json.loads(out)
    return doc


def mode(p: Path) -> int:
    return p.stat().st_mode & 0o7777


# ------------------------------------------------------------------ install
def test_install_writes_every_file_with_its_mode(pi: Path, capsys) -> None:
    code, out, _ = kiosk(capsys, "install", "--root", str(pi))
    assert code == 0
    unit = pi / UNIT
    assert mode(unit) == 0o644
    assert unit.read_text() == render_unit(unit_template(), Options())
    s = parse_unit(unit.read_text())["Service"]
    assert s["ExecStart"] == ["/opt/sente-pos/bin/sente-pos run"]
    assert s["User"] == ["sentepos"] and s["TTYPath"] == ["/dev/tty1"]
    assert not (pi / "etc/systemd/system/kiosk.service").exists()  # named after the product

    data = pi / "var/lib/sente-pos"
    assert mode(data) == 0o700
    assert mode(data / "config.toml") == 0o600
    assert 'enabled = true\ntheme = "console"' in (data / "config.toml").read_text()

    # No automatic login on the fallback console.
    assert not (pi / "etc/systemd/system/getty@tty1.service.d/autologin.conf").exists()
    # The font, other settings of the file kept.
    cs = (pi / "etc/default/console-setup").read_text()
    assert 'ACTIVE_CONSOLES="/dev/tty[1-6]"' in cs
    assert 'CHARMAP="UTF-8"' in cs and 'CODESET="guess"' in cs
    assert 'FONTFACE="Terminus"' in cs and 'FONTSIZE="6x12"' in cs
    assert "ISO-8859-1" not in cs and "Fixed" not in cs
    # Lock-down.
    assert (pi / "etc/systemd/logind.conf.d/sente-pos.conf").read_text().endswith(
        "[Login]\nNAutoVTs=0\nReserveVT=0\n")
    assert "CtrlAltDelBurstAction=none" in (pi / "etc/systemd/system.conf.d/sente-pos.conf"
                                            ).read_text()
    sysctl = (pi / "etc/sysctl.d/90-sente-pos.conf").read_text()
    assert "kernel.sysrq = 0\n" in sysctl and "kernel.printk = 3 4 1 3\n" in sysctl
    remap = (pi / "etc/console-setup/remap.inc").read_text()
    assert remap.startswith(REMAP)  # the owner's line kept
    assert "alt keycode 59 = VoidSymbol" in remap and "control alt keycode 88 = VoidSymbol" in remap
    assert remap.count("VoidSymbol") == 12 * 8 + 3
    cmdline = (pi / "boot/firmware/cmdline.txt").read_text()
    assert cmdline == ("console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootwait "
                       "consoleblank=0 loglevel=3 quiet\n")
    assert mode(pi / "boot/firmware/cmdline.txt") == 0o755
    # Root's record: 0600 in a 0700 directory.
    assert mode(pi / MANIFEST) == 0o600 and mode((pi / MANIFEST).parent) == 0o700

    # Commands act on the device: in a scratch root they are printed, not run.
    for cmd in ("apt-get install -y python3-venv libzbar0 console-setup libusb-1.0-0",
                "useradd --system --user-group --home-dir /var/lib/sente-pos "
                "--shell /usr/sbin/nologin sentepos",
                "systemctl set-default multi-user.target", "systemctl mask ctrl-alt-del.target",
                "systemctl mask kbrequest.target", "systemctl disable getty@tty1.service",
                f"systemctl enable {UNIT_NAME}", "systemctl daemon-reload",
                "setupcon --save-only", f"systemctl start {UNIT_NAME}"):
        assert f"print {cmd}   (not run: scratch root)" in out, cmd


def test_options_shape_the_unit(pi: Path, capsys, tmp_path: Path) -> None:
    app = tmp_path / "app"
    install_json(capsys, pi, "--user", "till", "--tty", "tty2", "--data-dir", "/srv/counter",
                 "--app-dir", str(app), "--font-size", "10x20")
    s, u = (parse_unit((pi / UNIT).read_text())[k] for k in ("Service", "Unit"))
    assert s["User"] == ["till"] and s["Group"] == ["till"]
    assert s["ExecStart"] == [f"{app}/bin/sente-pos run"]
    assert "SENTE_POS_HOME=/srv/counter" in s["Environment"]
    assert s["ReadWritePaths"] == ["/srv/counter"] and s["WorkingDirectory"] == ["/srv/counter"]
    assert "StateDirectory" not in s  # it only names directories under /var/lib
    assert s["TTYPath"] == ["/dev/tty2"]
    assert "/dev/tty2 rw" in s["DeviceAllow"] and "char-ttyUSB rw" in s["DeviceAllow"]
    assert u["Conflicts"] == ["getty@tty2.service"] and u["OnFailure"] == ["getty@tty2.service"]
    assert mode(pi / "srv/counter") == 0o700
    assert 'FONTSIZE="10x20"' in (pi / "etc/default/console-setup").read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (apt-get install systemd)")
def test_systemd_analyze_verify_the_installed_unit(pi: Path, capsys, tmp_path: Path) -> None:
    app = tmp_path / "opt" / "sente-pos"  # the app is not installed here: a stand-in
    (app / "bin").mkdir(parents=True)
    (app / "bin" / "sente-pos").write_text("#!/bin/sh\nexit 0\n")
    (app / "bin" / "sente-pos").chmod(0o755)
    install_json(capsys, pi, "--app-dir", str(app))
    proc = subprocess.run(["systemd-analyze", "verify", str(pi / UNIT)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    # Unknown keys and bad values are only warnings: any line about the unit is a failure.
    assert [line for line in proc.stderr.splitlines() if UNIT_NAME in line] == []


def test_second_run_changes_nothing_and_says_so(pi: Path, capsys) -> None:
    first = install_json(capsys, pi)
    assert sum(e["status"] == "changed" for e in first["steps"]) >= 10
    after_first = tree(pi)
    code, out, _ = kiosk(capsys, "install", "--root", str(pi))
    assert code == 0
    assert "nothing changed: the kiosk is already installed as asked" in out
    assert tree(pi) == after_first
    again = install_json(capsys, pi)
    assert [e for e in again["steps"] if e["status"] == "changed"] == []
    # Reloads follow changes: nothing changed, nothing to reload or check.
    printed = {e["what"] for e in again["steps"] if e["status"] == "not-run"}
    assert "systemctl daemon-reload" not in printed and "setupcon --save-only" not in printed


def test_a_changed_option_changes_only_what_it_shapes(pi: Path, capsys) -> None:
    install_json(capsys, pi)
    doc = install_json(capsys, pi, "--font-size", "8x16")
    changed = [e["what"] for e in doc["steps"] if e["status"] == "changed"]
    assert changed == ["/etc/default/console-setup"]
    printed = [e["what"] for e in doc["steps"] if e["status"] == "not-run"]
    assert "setupcon --save-only" in printed and "systemctl daemon-reload" not in printed
    # Uninstall still puts back the file as it was before the first install.
    assert kiosk(capsys, "uninstall", "--root", str(pi))[0] == 0
    assert (pi / "etc/default/console-setup").read_text() == CONSOLE_SETUP


def test_probes_skip_what_is_already_done(pi: Path, capsys) -> None:
    from sente_pos.kiosk_plan import PACKAGES

    (pi / "var/lib/dpkg/status").write_text("".join(
        f"Package: {p}\nStatus: install ok installed\n\n" for p in PACKAGES))
    with (pi / "etc/passwd").open("a") as f:
        f.write("sentepos:x:999:999::/var/lib/sente-pos:/usr/sbin/nologin\n")
    system = pi / "etc/systemd/system"
    for unit in ("kbrequest.target", "ctrl-alt-del.target"):
        (system / unit).symlink_to("/dev/null")
    (system / "default.target").unlink()
    (system / "default.target").symlink_to("/lib/systemd/system/multi-user.target")
    (system / "getty.target.wants/getty@tty1.service").unlink()
    (system / "multi-user.target.wants").mkdir()
    (system / "multi-user.target.wants" / UNIT_NAME).symlink_to(f"/etc/systemd/system/{UNIT_NAME}")
    venv = pi / "opt/sente-pos"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").symlink_to("/usr/bin/python3")
    (venv / "lib/python3.11/site-packages/sente_pos-0.1.0.dist-info").mkdir(parents=True)

    doc = install_json(capsys, pi)
    printed = [e["what"] for e in doc["steps"] if e["status"] == "not-run"]
    # Only what needs the running system is left: the reloads after the files, the
    # doctor's check and the start.
    assert [c for c in printed if not c.startswith(("systemctl daemon-reload", "setupcon",
                                                    "sysctl -p", "runuser"))] == [
        f"systemctl start {UNIT_NAME}"]
    ok = {e["what"] for e in doc["steps"] if e["status"] == "ok"}
    assert "apt-get update" in ok and "systemctl set-default multi-user.target" in ok


def test_reinstall_runs_pip_again(pi: Path, capsys) -> None:
    (pi / "opt/sente-pos/bin").mkdir(parents=True)
    (pi / "opt/sente-pos/bin/python").write_text("")
    (pi / "opt/sente-pos/lib/python3.11/site-packages/sente_pos-0.1.0.dist-info").mkdir(
        parents=True)
    pip = f"/opt/sente-pos/bin/pip install --upgrade -c {ROOT}/constraints-pi.txt"
    doc = install_json(capsys, pi, "--dry-run")
    assert [e["status"] for e in doc["steps"] if e["what"].startswith(pip)] == ["ok"]
    doc = install_json(capsys, pi, "--dry-run", "--reinstall")
    assert [e["what"] for e in doc["steps"] if e["what"].startswith(pip)] == [
        f"{pip} '{ROOT}[usb,serial]'"]


def test_usb_ids_add_udev_rules(pi: Path, capsys) -> None:
    doc = install_json(capsys, pi, "--camera-usb", "046D:0825", "--printer-usb", "0416:5011")
    cam = (pi / "etc/udev/rules.d/60-sente-pos-camera.rules").read_text()
    assert ('SUBSYSTEM=="video4linux", ATTRS{idVendor}=="046d", ATTRS{idProduct}=="0825", '
            'ATTR{index}=="0", SYMLINK+="pos-camera"') in cam
    prn = (pi / "etc/udev/rules.d/60-sente-pos-printer.rules").read_text()
    assert 'ATTR{idVendor}=="0416", ATTR{idProduct}=="5011", MODE="0660", GROUP="lp"' in prn
    assert "blacklist usblp" in (pi / "etc/modprobe.d/sente-pos-no-usblp.conf").read_text()
    printed = [e["what"] for e in doc["steps"] if e["status"] == "not-run"]
    assert "udevadm control --reload" in printed and "udevadm trigger" in printed


# ------------------------------------------------------------------ dry run
def test_dry_run_prints_files_modes_and_commands_and_writes_nothing(pi: Path, capsys) -> None:
    before = tree(pi)
    code, out, _ = kiosk(capsys, "install", "--root", str(pi), "--dry-run")
    assert code == 0
    assert tree(pi) == before
    assert f"write /etc/systemd/system/{UNIT_NAME}  (create: 0644 root:root)" in out
    assert "        | ExecStart=/opt/sente-pos/bin/sente-pos run" in out
    assert "dir   /var/lib/sente-pos  (create: 0700 sentepos:sentepos)" in out
    assert "write /var/lib/sente-pos/config.toml  (create: 0600 sentepos:sentepos)" in out
    assert "write /boot/firmware/cmdline.txt  (update: 0755 root:root)" in out
    assert "remove /etc/systemd/system/getty@tty1.service.d/autologin.conf" in out
    assert "run   apt-get update" in out and "run   systemctl mask ctrl-alt-del.target" in out
    assert "would be made" in out


def test_dry_run_needs_no_root(pi: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert kiosk(capsys, "install", "--dry-run", "--root", str(pi))[0] == 0


def test_the_merchants_config_is_copied_never_shown_never_replaced(
        pi: Path, capsys, tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[kiosk]\nenabled = true\n[pawacard]\npassword = "s3cret-vendor-pw"\n')
    code, out, err = kiosk(capsys, "install", "--root", str(pi), "--config", str(cfg),
                           "--dry-run")
    assert code == 0 and "s3cret" not in out + err
    assert "not shown: it holds the provider passwords" in out
    doc = install_json(capsys, pi, "--config", str(cfg))
    assert "s3cret" not in json.dumps(doc)
    home = pi / "var/lib/sente-pos"
    assert (home / "config.toml").read_bytes() == cfg.read_bytes()
    assert mode(home / "config.toml") == 0o600
    assert "s3cret" not in (pi / MANIFEST).read_text()
    # The merchant may have changed settings since: a second install keeps the file.
    (home / "config.toml").write_text('[kiosk]\nenabled = true\ntheme = "console"\n')
    install_json(capsys, pi, "--config", str(cfg))
    assert "theme" in (home / "config.toml").read_text()


# ---------------------------------------------------------------- uninstall
def test_uninstall_restores_what_install_changed(pi: Path, capsys) -> None:
    before = tree(pi)
    install_json(capsys, pi)
    code, out, _ = kiosk(capsys, "uninstall", "--root", str(pi))
    assert code == 0
    assert "done: everything install changed is taken back" in out
    # No command ran in the scratch root, so none is taken back; the files restored
    # under /etc/systemd and console-setup want their reloads (printed).
    assert "systemctl disable" not in out and "unmask" not in out
    for cmd in ("systemctl daemon-reload", "setupcon --save-only"):
        assert f"print {cmd}   (not run: scratch root)" in out, cmd
    after = tree(pi)
    # The journal and the merchant's config stay (they may hold unsent sales).
    kept = {k: after.pop(k) for k in ("var/lib/sente-pos", "var/lib/sente-pos/config.toml")}
    assert kept["var/lib/sente-pos"][0] == 0o700
    assert after == {**before, "var/lib": before["var/lib"]}
    assert "kept  /var/lib/sente-pos" in out
    # Nothing recorded any more: a second uninstall has nothing to do.
    code, out, _ = kiosk(capsys, "uninstall", "--root", str(pi))
    assert code == 0 and "nothing to undo" in out


def test_uninstall_dry_run_changes_nothing(pi: Path, capsys) -> None:
    install_json(capsys, pi)
    installed = tree(pi)
    code, out, _ = kiosk(capsys, "uninstall", "--root", str(pi), "--dry-run")
    assert code == 0 and tree(pi) == installed
    assert f"rm    /etc/systemd/system/{UNIT_NAME}" in out
    assert "put back /boot/firmware/cmdline.txt" in out


def test_uninstall_leaves_a_file_changed_since_install(pi: Path, capsys) -> None:
    install_json(capsys, pi)
    sysctl = pi / "etc/sysctl.d/90-sente-pos.conf"
    sysctl.write_text("kernel.sysrq = 176\n")  # the owner's own edit
    code, _, err = kiosk(capsys, "uninstall", "--root", str(pi))
    assert code == 0
    assert "/etc/sysctl.d/90-sente-pos.conf changed since install: left as it is" in err
    assert sysctl.read_text() == "kernel.sysrq = 176\n"
    assert not (pi / UNIT).exists()
    assert (pi / "boot/firmware/cmdline.txt").read_text() == CMDLINE
    # Still recorded: removed once it is put back as install wrote it.
    assert list(json.loads((pi / MANIFEST).read_text())["files"]) == [
        "/etc/sysctl.d/90-sente-pos.conf"]


# ------------------------------------------------------------------ refusals
def test_not_root_is_refused_and_changes_nothing(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for action in ("install", "uninstall"):
        code, out, err = kiosk(capsys, action)
        assert code == 2
        assert "needs root: run it with sudo" in err and "--dry-run" in err
        assert out == ""


@pytest.mark.parametrize(("args", "message"), [
    (["--tty", "console"], "--tty 'console'"),
    (["--user", "root"], "--user 'root'"),
    (["--user", "Bad User"], "--user 'Bad User'"),
    (["--data-dir", "relative/dir"], "--data-dir 'relative/dir'"),
    (["--data-dir", "/var/lib/../etc"], "--data-dir '/var/lib/../etc'"),
    (["--data-dir", "/opt/sente-pos/data"], "--data-dir must be outside --app-dir"),
    (["--font-size", "7x13"], "--font-size '7x13'"),
    (["--font-face", "Comic"], "--font-face 'Comic'"),
    (["--camera-usb", "logitech"], "--camera-usb 'logitech'"),
    (["--source", "/nonexistent"], "--source /nonexistent"),
])
def test_bad_options_are_refused_before_anything_changes(
        pi: Path, capsys, args: list[str], message: str) -> None:
    before = tree(pi)
    code, _, err = kiosk(capsys, "install", "--root", str(pi), *args)
    assert code == 2
    assert message in err
    assert tree(pi) == before


def test_a_config_that_is_not_toml_is_refused(pi: Path, capsys, tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text("[kiosk\nenabled = yes\n")
    before = tree(pi)
    code, _, err = kiosk(capsys, "install", "--root", str(pi), "--config", str(bad))
    assert code == 2 and "not valid TOML" in err
    assert tree(pi) == before


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["kiosk", "install", "--no-such-option"])
    assert exc.value.code == 2
    capsys.readouterr()


# ----------------------------------------------------------------- bootstrap
def test_runs_from_the_source_tree_with_the_standard_library_only(pi: Path) -> None:
    """On a fresh Pi nothing is installed yet: ``sudo python3 -m sente_pos.kiosk install``."""
    probe = ("import sys; import sente_pos.kiosk; "
             "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    # -S: no site-packages at all, the package is imported from the source tree.
    mods = set(subprocess.run([sys.executable, "-S", "-c", probe], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.split())
    assert mods - set(sys.stdlib_module_names) - {"sente_pos", "__main__"} == set()
    proc = subprocess.run([sys.executable, "-S", "-m", "sente_pos.kiosk", "install", "--root",
                           str(pi), "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"write /etc/systemd/system/{UNIT_NAME}" in proc.stdout


# ------------------------------------------------- on the device (commands faked)
class FakeDevice:
    """The device's commands, recorded instead of run (``systemctl is-active``: as
    ``active``); a command starting with ``fail`` exits 100."""

    def __init__(self, fail: str | None = None) -> None:
        self.ran: list[str] = []
        self.fail = fail
        self.active = False
        self.effects: dict[str, Callable[[], object]] = {}  # what a command does to files

    def run(self, argv: list[str], **_: object) -> subprocess.CompletedProcess[bytes]:
        import shlex

        cmd = shlex.join(argv)
        self.ran.append(cmd)
        rc = 0 if self.active or not cmd.startswith("systemctl is-active") else 3
        if self.fail and cmd.startswith(self.fail):
            rc = 100
        for prefix, effect in self.effects.items():
            if cmd.startswith(prefix):
                effect()
        return subprocess.CompletedProcess(argv, rc)


@pytest.fixture
def device(monkeypatch: pytest.MonkeyPatch):
    """The scratch root treated as the device: commands go to a FakeDevice, files are
    chowned for real (so root only), to ``nobody`` as the service user."""
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    from types import SimpleNamespace

    import sente_pos.kiosk as kiosk_mod
    import sente_pos.kiosk_plan as plan_mod

    def make(fail: str | None = None) -> FakeDevice:
        fake = FakeDevice(fail)
        monkeypatch.setattr(plan_mod.Target, "is_device", property(lambda self: True))
        for mod in (kiosk_mod, plan_mod):
            monkeypatch.setattr(mod, "subprocess", SimpleNamespace(run=fake.run))
        return fake

    return make


def test_on_the_device_commands_run_in_order_and_uninstall_takes_them_back(
        pi: Path, capsys, device) -> None:
    fake = device()
    code, out, err = kiosk(capsys, "install", "--root", str(pi), "--user", "nobody")
    assert code == 0, err
    ran = [c for c in fake.ran if not c.startswith("systemctl is-active")]
    assert ran[:3] == ["apt-get update",
                       "apt-get install -y python3-venv libzbar0 console-setup libusb-1.0-0",
                       "useradd --system --user-group --home-dir /var/lib/sente-pos "
                       "--shell /usr/sbin/nologin nobody"]
    assert ran[3] == "python3 -m venv --upgrade-deps /opt/sente-pos"
    assert ran[4].startswith("/opt/sente-pos/bin/pip install --upgrade -c ")
    assert ran[5:] == [
        "systemctl set-default multi-user.target",
        "systemctl mask kbrequest.target", "systemctl mask ctrl-alt-del.target",
        "systemctl daemon-reload", "systemctl disable getty@tty1.service",
        f"systemctl enable {UNIT_NAME}", "setupcon --save-only",
        "sysctl -p /etc/sysctl.d/90-sente-pos.conf",
        "runuser -u nobody -- env SENTE_POS_HOME=/var/lib/sente-pos "
        "/opt/sente-pos/bin/sente-pos doctor",
        f"systemctl start {UNIT_NAME}"]
    home = pi / "var/lib/sente-pos"
    assert home.stat().st_uid == 65534 and (home / "config.toml").stat().st_uid == 65534
    assert (pi / UNIT).stat().st_uid == 0
    assert "reboot once" in out

    fake.ran.clear()
    code, out, err = kiosk(capsys, "uninstall", "--root", str(pi))
    assert code == 0, err
    assert fake.ran == [f"systemctl disable --now {UNIT_NAME}",
                        "systemctl enable --now getty@tty1.service",
                        "systemctl unmask ctrl-alt-del.target",
                        "systemctl unmask kbrequest.target",
                        "systemctl set-default graphical.target",
                        "systemctl daemon-reload", "setupcon --save-only"]
    assert "rm -r /opt/sente-pos" in out and "kept  packages python3-venv" in out


def test_a_failing_command_stops_the_install_and_uninstall_takes_back_the_rest(
        pi: Path, capsys, device) -> None:
    before = tree(pi)
    device(fail="systemctl mask ctrl-alt-del.target")
    code, _, err = kiosk(capsys, "install", "--root", str(pi), "--user", "nobody")
    assert code == 1
    assert "`systemctl mask ctrl-alt-del.target` failed (exit code 100)" in err
    assert "steps after it were not done" in err
    assert (pi / "boot/firmware/cmdline.txt").read_text() == CMDLINE  # after it: not done
    assert (pi / UNIT).exists()  # before it: done, and recorded
    fake = device()
    assert kiosk(capsys, "uninstall", "--root", str(pi))[0] == 0
    assert "systemctl unmask kbrequest.target" in fake.ran
    assert "systemctl unmask ctrl-alt-del.target" not in fake.ran  # it never happened
    after = tree(pi)
    for kept in ("var/lib/sente-pos", "var/lib/sente-pos/config.toml"):
        after.pop(kept)
    assert after == before


def test_the_doctors_findings_are_a_warning_not_a_failure(pi: Path, capsys, device) -> None:
    fake = device(fail="runuser")
    code, _, err = kiosk(capsys, "install", "--root", str(pi), "--user", "nobody")
    assert code == 0
    assert "found problems (exit code 100)" in err
    assert fake.ran[-1] == f"systemctl start {UNIT_NAME}"


def test_the_manual_installs_kiosk_service_is_replaced(pi: Path, capsys) -> None:
    old = pi / "etc/systemd/system/kiosk.service"
    old.write_bytes((ROOT / "kiosk.service").read_bytes())
    (pi / "etc/systemd/system/multi-user.target.wants").mkdir()
    (pi / "etc/systemd/system/multi-user.target.wants/kiosk.service").symlink_to(old)
    code, out, _ = kiosk(capsys, "install", "--root", str(pi))
    assert code == 0
    assert "print systemctl disable --now kiosk.service   (not run: scratch root)" in out
    assert not old.exists() and (pi / UNIT).exists()
    assert kiosk(capsys, "uninstall", "--root", str(pi))[0] == 0
    assert old.read_bytes() == (ROOT / "kiosk.service").read_bytes()


def test_a_running_kiosk_restarts_when_the_app_is_reinstalled(pi: Path, capsys, device) -> None:
    venv = pi / "opt/sente-pos"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").write_text("")
    (venv / "lib/python3.11/site-packages/sente_pos-0.1.0.dist-info").mkdir(parents=True)
    assert kiosk(capsys, "install", "--root", str(pi), "--user", "nobody")[0] == 0
    fake = device()
    fake.active = True
    assert kiosk(capsys, "install", "--root", str(pi), "--user", "nobody")[0] == 0
    assert f"systemctl restart {UNIT_NAME}" not in fake.ran  # nothing changed: left running
    assert kiosk(capsys, "install", "--root", str(pi), "--user", "nobody", "--reinstall")[0] == 0
    assert fake.ran[-1] == f"systemctl restart {UNIT_NAME}"


def test_uninstall_dry_run_of_roots_manifest_as_another_user(pi: Path, capsys, monkeypatch) -> None:
    install_json(capsys, pi)

    def denied(self, p: str) -> bytes | None:
        raise PermissionError(13, "Permission denied", p)

    import sente_pos.kiosk_plan as plan_mod

    monkeypatch.setattr(plan_mod.Target, "read", denied)
    code, _, err = kiosk(capsys, "uninstall", "--root", str(pi), "--dry-run")
    assert code == 2 and "needs root: run it with sudo" in err


def test_edits_apply_to_the_file_as_the_commands_before_them_left_it(
        pi: Path, capsys, device) -> None:
    """console-setup's postinst writes /etc/default/console-setup: the font edit is made
    to that file, not to the one seen when the plan was made (here: none)."""
    (pi / "etc/default/console-setup").unlink()
    fake = device()
    fake.effects["apt-get install"] = lambda: (pi / "etc/default/console-setup").write_text(
        'ACTIVE_CONSOLES="/dev/tty[1-6]"\nXKBLAYOUT="us"\n')
    assert kiosk(capsys, "install", "--root", str(pi), "--user", "nobody")[0] == 0
    cs = (pi / "etc/default/console-setup").read_text()
    assert 'XKBLAYOUT="us"' in cs and 'FONTFACE="Terminus"' in cs
    # Its original is what the package wrote: uninstall puts that back.
    device()
    assert kiosk(capsys, "uninstall", "--root", str(pi))[0] == 0
    assert 'XKBLAYOUT="us"' in (pi / "etc/default/console-setup").read_text()
