"""chatmail-setup on a temporary tree (--root, --out): plan, diff, backups, checks, restore."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest
from chatmail_services.relaysetup import cli
from chatmail_services.relaysetup.apply import (
    BACKUP_INFIX,
    BACKUPS_KEPT,
    apply_plan,
    read_current,
)
from chatmail_services.relaysetup.diff import plan_diff
from chatmail_services.relaysetup.model import Desired, Part
from chatmail_services.relaysetup.plan import make_plan
from chatmail_services.relaysetup.postfixmerge import BEGIN

DEBIAN_MAIN = """\
# See /usr/share/postfix/main.cf.dist for a commented, more complete version
smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
smtpd_tls_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem
smtpd_tls_key_file=/etc/ssl/private/ssl-cert-snakeoil.key
myhostname = debian.example
alias_maps = hash:/etc/aliases
mydestination = $myhostname, debian, localhost.localdomain, localhost
relayhost =
mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128
smtpd_client_connection_rate_limit = 30
"""
TREE_ARGS = ("--mail-user", "chatmaildev", "--dovecot-version", "2.3.19.1")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc/postfix").mkdir(parents=True)
    (root / "etc/postfix/main.cf").write_text(DEBIAN_MAIN)
    (root / "etc/postfix/master.cf").write_text(
        Path("/usr/share/postfix/master.cf.dist").read_text()
    )
    return root


def setup(capsys, config, *args: str) -> tuple[int, str, str]:
    status = cli.main(["--config", config.path, *TREE_ARGS, *args])
    out, err = capsys.readouterr()
    return status, out, err


def files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_first_run_installs_second_run_changes_nothing(tree, make_config, capsys):
    config = make_config(tls={"self_signed": "yes"})
    status, out, err = setup(capsys, config, "--root", str(tree))
    assert status == 0, err
    assert "+myhostname = chat.example" in out and "-myhostname = debian.example" in out
    assert "(content not shown: it holds a secret)" in out  # the TLS key, the DKIM key
    assert "BEGIN PRIVATE KEY" not in out and "BEGIN RSA PRIVATE KEY" not in out
    main = (tree / "etc/postfix/main.cf").read_text()
    assert "smtpd_client_connection_rate_limit = 30\n" in main  # the admin's own
    assert "ssl-cert-snakeoil" not in main  # ours replaced Debian's
    backups = sorted(p.name for p in (tree / "etc/postfix").glob("*.chatmail-setup.bak.*"))
    assert [name.split(".chatmail-setup")[0] for name in backups] == ["main.cf", "master.cf"]
    assert (tree / "etc/chatmail/tls/privkey.pem").stat().st_mode & 0o777 == 0o600
    before = files(tree)
    status, out, err = setup(capsys, config, "--root", str(tree))
    assert (status, out) == (0, "chatmail-setup: nothing to change\n"), err
    assert files(tree) == before


def test_dry_run_prints_the_diff_and_changes_nothing(tree, make_config, capsys):
    config = make_config(tls={"self_signed": "yes"})
    setup(capsys, config, "--root", str(tree))
    before = files(tree)
    # the same config but the recipient limit (the harness picks a new free port each time)
    port = {"smtpd_port": config.federation.smtpd_port}
    changed = make_config(
        tls={"self_signed": "yes"}, chatmail={"max_recipients": 50}, federation=port
    )
    status, out, err = setup(capsys, changed, "--root", str(tree), "--dry-run")
    assert status == 0, err
    assert "-smtpd_recipient_limit = 1000\n+smtpd_recipient_limit = 50\n" in out
    # the recipient limit is in main.cf and on the info page
    assert out.endswith("chatmail-setup: 2 file(s) to change (postfix, nginx)\n")
    assert files(tree) == before


def test_out_renders_a_fresh_tree_without_backups(tmp_path, make_config, capsys):
    secret = tmp_path / "turn-secret"
    secret.write_text("production-secret\n")
    out_dir = tmp_path / "out"
    (out_dir / str(secret).lstrip("/")).parent.mkdir(parents=True)
    (out_dir / str(secret).lstrip("/")).write_text("production-secret\n")
    # the certificate must exist (in the tree) before anything is rendered
    config = make_config(
        tls={
            "cert_file": "/etc/ssl/certs/ssl-cert-snakeoil.pem",
            "key_file": "/etc/ssl/private/ssl-cert-snakeoil.key",
        },
        metadata={"turn_host": "turn.chat.example", "turn_secret_file": secret},
    )
    status, _, err = setup(capsys, config, "--out", str(out_dir))
    assert status == 1
    assert err.count("\n") == 2 and "not found; get a certificate with certbot" in err
    for path in ("etc/ssl/certs/ssl-cert-snakeoil.pem", "etc/ssl/private/ssl-cert-snakeoil.key"):
        (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / path).write_text("placeholder: only the path is rendered\n")
    status, _, err = setup(capsys, config, "--out", str(out_dir))
    assert status == 0, err
    assert not list(out_dir.rglob("*.chatmail-setup.bak.*"))
    assert (out_dir / "etc/postfix/main.cf").read_text().startswith(BEGIN)
    turn = out_dir / "etc/turnserver.conf"
    assert "static-auth-secret=production-secret\n" in turn.read_text()
    assert turn.stat().st_mode & 0o777 == 0o640
    # what Postfix and Dovecot make of it: tests/stack/test_production_templates.py


def test_a_missing_turn_secret_is_made_and_never_printed(tree, make_config, capsys):
    config = make_config(
        tls={"self_signed": "yes"},
        metadata={"turn_host": "turn.chat.example", "turn_secret_file": "/etc/chatmail/turn"},
    )
    status, out, err = setup(capsys, config, "--root", str(tree))
    assert status == 0, err
    secret = (tree / "etc/chatmail/turn").read_text().strip()
    assert len(secret) >= 32 and secret not in out
    assert f"static-auth-secret={secret}\n" in (tree / "etc/turnserver.conf").read_text()
    assert "/etc/turnserver.conf: create (content not shown: it holds a secret)" in out


def _dovecot_check(path: Path) -> tuple[str, ...]:
    return ("doveconf", "-c", str(path), "-n")


def test_a_failed_check_restores_every_file_and_reloads_nothing(tmp_path):
    root = tmp_path / "root"
    conf = root / "etc/dovecot/dovecot.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("protocols = imap\n")
    conf.chmod(0o640)
    marker = tmp_path / "reloaded"
    part = Part(
        "dovecot",
        files=(
            Desired("/etc/dovecot/dovecot.conf", b"protocols = imap\nno_such_setting = 1\n"),
            Desired("/etc/dovecot/new.conf.ext", b"new\n"),
        ),
        checks=(_dovecot_check(conf),),
        reloads=(("touch", str(marker)),),
    )
    plan = make_plan([part], read_current(root), lambda desired: None)
    assert len(plan.changes) == 2
    problems = apply_plan(plan, root, lambda desired: None)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"dovecot: doveconf -c {conf} -n: doveconf: Fatal: ")
    assert "no_such_setting" in problems[0]
    assert problems[1] == "every file restored as it was; nothing reloaded"
    assert conf.read_text() == "protocols = imap\n" and conf.stat().st_mode & 0o777 == 0o640
    assert not (root / "etc/dovecot/new.conf.ext").exists()
    assert not list(conf.parent.glob("*.chatmail-setup.bak.*"))
    assert not marker.exists()
    # the same with a good file: checked, kept, reloaded, the old one backed up
    good = Part(
        "dovecot",
        files=(Desired("/etc/dovecot/dovecot.conf", b"protocols = imap lmtp\n"),),
        checks=part.checks,
        reloads=part.reloads,
    )
    plan = make_plan([good], read_current(root), lambda desired: None)
    assert apply_plan(plan, root, lambda desired: None) == []
    assert conf.read_text() == "protocols = imap lmtp\n" and marker.exists()
    (backup,) = conf.parent.glob("dovecot.conf.chatmail-setup.bak.*")
    assert backup.read_text() == "protocols = imap\n"
    assert "nothing to change" in plan_diff(make_plan([good], read_current(root), lambda d: None))


def test_a_mode_change_alone_is_shown_and_applied(tmp_path):
    root = tmp_path
    (root / "f").write_text("x\n")
    (root / "f").chmod(0o644)
    part = Part("p", files=(Desired("/f", b"x\n", mode=0o600),))
    plan = make_plan([part], read_current(root), lambda desired: None)
    assert plan_diff(plan).startswith("/f: mode 0644 -> 0600\n")
    assert apply_plan(plan, root, lambda desired: None, checks=False, reloads=False) == []
    assert (root / "f").stat().st_mode & 0o777 == 0o600
    assert not list(root.glob("f.chatmail-setup.bak.*"))


def test_missing_certificate_is_one_line_per_file(tree, make_config, capsys):
    status, out, err = setup(capsys, make_config(), "--root", str(tree))
    assert status == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0] == (
        "chatmail-setup: [tls] /etc/letsencrypt/live/chat.example/fullchain.pem: not found; get "
        "a certificate with certbot (docs/admin.md) or set [tls] self_signed = yes"
    )


def test_the_dovecot_set_follows_the_version(tree, make_config, capsys):
    """2.3 gets templates/dovecot/, 2.4 (Debian 13) templates/dovecot24/ with the Lua auth;
    another version is one clear line (the parsing itself: tests/common/test_dovecotversion)."""
    config = make_config(tls={"self_signed": "yes"})
    status, _out, err = setup(capsys, config, "--root", str(tree), "--dovecot-version", "2.4.1")
    assert status == 0, err
    conf = (tree / "etc/dovecot/dovecot.conf").read_text()
    assert conf.startswith("dovecot_config_version") or "dovecot_config_version" in conf
    assert (tree / "etc/dovecot/chatmail-auth.lua").exists()
    status, _out, err = setup(capsys, config, "--root", str(tree), "--dovecot-version", "2.2.36")
    assert status != 0
    assert "chatmail-setup: Dovecot 2.2 is not supported (templates for 2.3, 2.4)" in err


def test_a_service_two_changed_parts_share_is_reloaded_once(tmp_path):
    log = tmp_path / "reloads"
    reload = ("sh", "-c", f"echo reloaded >> {log}")
    parts = [
        Part("tls", files=(Desired("/cert.pem", b"cert\n"),), reloads=(reload,)),
        Part("postfix", files=(Desired("/main.cf", b"x = 1\n"),), reloads=(reload,)),
        Part("unchanged", reloads=(("sh", "-c", f"echo wrong >> {log}"),)),
    ]
    plan = make_plan(parts, read_current(tmp_path), lambda desired: None)
    assert apply_plan(plan, tmp_path, lambda desired: None) == []
    assert log.read_text() == "reloaded\n"


# -- secret files: kept, but their mode and owner repaired; backups 0600 and pruned --


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_kept_secret_files_get_their_mode_back_and_the_dry_run_says_so(tree, make_config, capsys):
    config = make_config(
        tls={"self_signed": "yes"},
        metadata={"turn_host": "turn.chat.example", "turn_secret_file": "/etc/chatmail/turn"},
    )
    assert setup(capsys, config, "--root", str(tree))[0] == 0
    secrets = {
        config.dkim.key_file: 0o600,
        "/etc/chatmail/turn": 0o640,
        "/etc/chatmail/tls/privkey.pem": 0o600,
    }
    contents = {}
    for path in secrets:
        file = tree / path.lstrip("/")
        contents[path] = file.read_bytes()
        file.chmod(0o644)  # left world-readable
    status, out, err = setup(capsys, config, "--root", str(tree), "--dry-run")
    assert status == 0, err
    for path, mode in secrets.items():
        assert f"{path}: mode 0644 -> {mode:04o} (secret kept, mode repaired)\n" in out, out
        assert _mode(tree / path.lstrip("/")) == 0o644  # a dry run changes nothing
    status, out, err = setup(capsys, config, "--root", str(tree))
    assert status == 0, err
    for path, mode in secrets.items():
        file = tree / path.lstrip("/")
        assert (_mode(file), file.read_bytes()) == (mode, contents[path])
        assert not list(file.parent.glob(f"{file.name}.chatmail-setup.bak.*"))
    assert setup(capsys, config, "--root", str(tree))[1] == "chatmail-setup: nothing to change\n"


def test_a_kept_secret_gets_its_owner_back(tmp_path):
    """Owners are managed on the real system only: the same plan and apply, with ids."""
    key = tmp_path / "etc/chatmail/dkim/chatmail.private"
    key.parent.mkdir(parents=True)
    key.write_bytes(b"the admin's key\n")
    nobody = pwd.getpwnam("nobody")
    os.chown(key, nobody.pw_uid, nobody.pw_gid)
    key.chmod(0o640)
    desired = Desired(
        "/etc/chatmail/dkim/chatmail.private", b"", 0o600, keep_existing=True, secret=True
    )
    part = Part("dkim", files=(desired,))
    plan = make_plan([part], read_current(tmp_path), lambda d: (0, 0))
    group = grp.getgrgid(nobody.pw_gid).gr_name
    assert plan_diff(plan) == (
        f"{desired.path}: mode 0640 -> 0600 (secret kept, mode repaired)\n"
        f"{desired.path}: owner nobody:{group} -> root:root (secret kept, owner repaired)\n"
        "chatmail-setup: 1 file(s) to change (dkim)\n"
    )
    assert apply_plan(plan, tmp_path, lambda d: (0, 0), checks=False, reloads=False) == []
    stat = key.stat()
    assert (stat.st_uid, stat.st_gid, _mode(key)) == (0, 0, 0o600)
    assert key.read_bytes() == b"the admin's key\n"
    assert make_plan([part], read_current(tmp_path), lambda d: (0, 0)).changes == ()


def test_a_replaced_secret_s_backup_is_0600_and_restored_as_it_was(tmp_path):
    conf = tmp_path / "etc/turnserver.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("static-auth-secret=old\n")
    conf.chmod(0o640)
    new = Desired("/etc/turnserver.conf", b"static-auth-secret=new\n", 0o640, secret=True)
    failing = Part("coturn", files=(new,), checks=(("false",),))
    problems = apply_plan(
        make_plan([failing], read_current(tmp_path), lambda d: None), tmp_path, lambda d: None
    )
    assert problems[-1] == "every file restored as it was; nothing reloaded"
    assert (conf.read_text(), _mode(conf)) == ("static-auth-secret=old\n", 0o640)
    assert not list(conf.parent.glob("turnserver.conf.chatmail-setup.bak.*"))
    part = Part("coturn", files=(new,))
    plan = make_plan([part], read_current(tmp_path), lambda d: None)
    assert apply_plan(plan, tmp_path, lambda d: None, reloads=False) == []
    (backup,) = conf.parent.glob("turnserver.conf.chatmail-setup.bak.*")
    assert (backup.read_text(), _mode(backup)) == ("static-auth-secret=old\n", 0o600)
    assert (conf.read_text(), _mode(conf)) == ("static-auth-secret=new\n", 0o640)


def test_old_backups_are_pruned_to_the_last_few(tree, make_config, capsys):
    config = make_config(tls={"self_signed": "yes"})
    postfix = tree / "etc/postfix"
    old = [postfix / f"main.cf{BACKUP_INFIX}2020010{day}T000000" for day in range(1, 8)]
    for number, path in enumerate(old):
        path.write_text(f"old {number}\n")
    (postfix / "main.cf.my-own.bak").write_text("the admin's\n")
    assert setup(capsys, config, "--root", str(tree))[0] == 0
    backups = sorted(postfix.glob(f"main.cf{BACKUP_INFIX}*"))
    assert len(backups) == BACKUPS_KEPT
    assert backups[-1].read_text() == DEBIAN_MAIN  # the one this run made
    assert backups[:-1] == old[-(BACKUPS_KEPT - 1) :]  # the newest old ones stay
    assert (postfix / "main.cf.my-own.bak").read_text() == "the admin's\n"
    assert len(list(postfix.glob(f"master.cf{BACKUP_INFIX}*"))) == 1


def test_a_turn_secret_that_would_add_lines_to_turnserver_conf_is_refused(
    tree, make_config, capsys
):
    secret = tree / "etc/chatmail/turn"
    secret.parent.mkdir(parents=True)
    secret.write_text("s3cret\nlistening-port=1\n")
    config = make_config(
        tls={"self_signed": "yes"},
        metadata={"turn_host": "turn.chat.example", "turn_secret_file": "/etc/chatmail/turn"},
    )
    before = files(tree)
    status, out, err = setup(capsys, config, "--root", str(tree))
    assert (status, out) == (1, ""), out
    assert err == (
        "chatmail-setup: [metadata] turn_secret_file /etc/chatmail/turn: line break (U+000A) is "
        "not allowed in it (letters, digits and - _ . ~ + / =); remove it and run chatmail-setup "
        "again for a new one\n"
    )
    assert files(tree) == before
