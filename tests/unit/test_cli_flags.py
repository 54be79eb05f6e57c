"""kago.cli: the runc/urfave flag grammar, command dispatch over a fake library,
runc's messages and exit codes, and the import cost of the hot path.

The ``same as runc`` tests at the end run the real runc (skipped when it is not
installed) and compare stdout, stderr and the exit status byte for byte.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kago import cli, log
from kago.cli import commands, flags, helptext
from kago.cli.flags import UsageError, parse
from kago.errors import ContainerNotFound, InvalidState, KagoError, SpecError

REPO = Path(__file__).absolute().parents[2]


@pytest.fixture(autouse=True)
def _reset_log():
    log.configure()
    yield
    log.configure()


def usage_error(argv):
    with pytest.raises(UsageError) as ei:
        parse(argv)
    return ei.value


# =========================================================================
# parsing: global flags
# =========================================================================

def test_global_defaults():
    inv = parse(["state", "c1"])
    assert inv.action == "run" and inv.command == "state" and inv.args == ["c1"]
    assert inv.globals == {"debug": False, "log": "", "log_format": "text",
                           "root": "/run/kago", "criu": "criu", "systemd_cgroup": False,
                           "rootless": "auto"}
    assert inv.explicit == set()


@pytest.mark.parametrize("argv", [
    ["--root", "/x", "state", "c1"],
    ["-root", "/x", "state", "c1"],
    ["--root=/x", "state", "c1"],
    ["-root=/x", "state", "c1"],
])
def test_global_value_spellings(argv):
    inv = parse(argv)
    assert inv.globals["root"] == "/x"
    assert inv.explicit == {"root"}
    assert inv.args == ["c1"]


def test_global_flags_all():
    inv = parse(["--debug", "--log", "/l", "--log-format", "json", "--systemd-cgroup",
                 "--criu", "/c", "--rootless", "true", "list"])
    g = inv.globals
    assert g["debug"] and g["systemd_cgroup"]
    assert (g["log"], g["log_format"], g["criu"], g["rootless"]) == ("/l", "json", "/c", "true")
    assert inv.command == "list"


def test_global_bool_with_value():
    assert parse(["--debug=false", "list"]).globals["debug"] is False
    assert parse(["-debug=1", "list"]).globals["debug"] is True
    e = usage_error(["--debug=xx", "list"])
    assert e.stage == "global"
    assert e.message == 'invalid boolean value "xx" for -debug: parse error'


def test_global_errors():
    e = usage_error(["-foo", "state", "x"])
    assert (e.stage, e.message, e.exit_code) == ("global", "flag provided but not defined: -foo", 1)
    assert usage_error(["--foo=1", "state"]).message == "flag provided but not defined: -foo"
    assert usage_error(["--root"]).message == "flag needs an argument: -root"
    assert usage_error(["---root", "x"]).message == "bad flag syntax: ---root"


def test_global_flags_are_not_command_flags():
    e = usage_error(["state", "--root", "/x", "c1"])
    assert e.stage == "command" and e.command == "state"
    assert e.message == "flag provided but not defined: -root"


def test_help_and_version():
    for argv in (["--help"], ["-h"], [], ["--debug"], ["help"], ["h"], ["-h", "state"]):
        inv = parse(argv)
        assert (inv.action, inv.command) == ("help", None), argv
    for argv in (["--version"], ["-v"], ["-v", "state", "x"]):
        assert parse(argv).action == "version"
    for argv in (["state", "--help"], ["state", "-h"], ["help", "state"], ["h", "state"],
                 ["state", "c1", "--help"], ["kill", "-help"]):
        inv = parse(argv)
        assert inv.action == "help" and inv.command in ("state", "kill"), argv
    assert parse(["state", "--help=false", "c1"]).action == "run"


def test_unknown_command_and_help_topic():
    e = usage_error(["nosuchcmd"])
    assert (e.stage, e.message, e.exit_code) == ("topic", "No help topic for 'nosuchcmd'", 3)
    e = usage_error(["help", "nosuch"])
    assert (e.stage, e.exit_code) == ("topic", 3)


# =========================================================================
# parsing: command flags
# =========================================================================

@pytest.mark.parametrize("argv", [
    ["create", "--bundle", "/b", "c1"],
    ["create", "-bundle", "/b", "c1"],
    ["create", "--bundle=/b", "c1"],
    ["create", "-bundle=/b", "c1"],
    ["create", "-b", "/b", "c1"],
    ["create", "--b=/b", "c1"],
    ["create", "c1", "-b", "/b"],          # flags after the positional (reordered)
    ["create", "c1", "--bundle=/b"],
])
def test_command_value_spellings(argv):
    inv = parse(argv)
    assert inv.opts["bundle"] == "/b" and inv.args == ["c1"]


def test_create_defaults_and_all_flags():
    inv = parse(["create", "c1"])
    assert inv.opts == {"bundle": "", "console_socket": "", "pid_file": "", "no_pivot": False,
                        "no_new_keyring": False, "preserve_fds": 0}
    inv = parse(["create", "--console-socket", "/s", "--pid-file", "p", "--no-pivot",
                 "--no-new-keyring", "--preserve-fds", "3", "c1"])
    assert inv.opts == {"bundle": "", "console_socket": "/s", "pid_file": "p", "no_pivot": True,
                        "no_new_keyring": True, "preserve_fds": 3}


@pytest.mark.parametrize("argv, opt", [
    (["delete", "-f", "c1"], "force"), (["delete", "--force", "c1"], "force"),
    (["delete", "c1", "-f"], "force"), (["delete", "-force", "c1"], "force"),
    (["delete", "-f=true", "c1"], "force"),
    (["kill", "-a", "c1", "9"], "all"), (["kill", "--all", "c1"], "all"),
    (["run", "-d", "c1"], "detach"), (["run", "--detach", "c1"], "detach"),
    (["run", "c1", "--keep"], "keep"),
    (["list", "-q"], "quiet"), (["list", "--quiet"], "quiet"),
    (["spec", "--rootless"], "rootless"),
])
def test_booleans(argv, opt):
    assert parse(argv).opts[opt] is True


def test_boolean_false_and_bad_value():
    assert parse(["delete", "--force=false", "c1"]).opts["force"] is False
    e = usage_error(["delete", "-f=maybe", "c1"])
    assert (e.stage, e.message) == ("command", 'invalid boolean value "maybe" for -f: parse error')


def test_boolean_does_not_take_the_next_argument():
    # runc 1.1.5 would make this `kill 9 c1`; kago keeps the order
    inv = parse(["kill", "c1", "--all", "9"])
    assert inv.opts["all"] and inv.args == ["c1", "9"]


def test_double_dash():
    assert parse(["delete", "--", "c1"]).args == ["c1"]
    assert parse(["delete", "-f", "--", "c1"]).opts["force"]
    assert parse(["state", "c1", "--"]).args == ["c1"]
    inv = parse(["kill", "c1", "--", "-9"])
    assert inv.args == ["c1", "-9"]
    # after `--` a flag is an argument
    e = usage_error(["delete", "c1", "--", "-f"])
    assert (e.stage, e.message) == ("args", 'kago: "delete" requires exactly 1 argument(s)')
    # a `--` taken as a flag's value
    assert parse(["list", "-f", "--"]).opts["format"] == "--"


def test_unknown_flags():
    e = usage_error(["state", "-foo", "c1"])
    assert (e.stage, e.command, e.message) == ("command", "state",
                                               "flag provided but not defined: -foo")
    assert usage_error(["list", "-fjson"]).message == "flag provided but not defined: -fjson"
    assert usage_error(["state", "---x", "c1"]).message == "bad flag syntax: ---x"
    assert usage_error(["state", "-=x", "c1"]).message == "bad flag syntax: -=x"
    # after the first positional an unknown flag is an argument (urfave moves known flags only)
    e = usage_error(["state", "c1", "-foo"])
    assert (e.stage, e.message) == ("args", 'kago: "state" requires exactly 1 argument(s)')
    # ... and so is everything once a `--` is seen
    assert usage_error(["state", "-foo", "c1", "--"]).stage == "args"
    assert parse(["state", "-"]).args == ["-"]


def test_missing_value_and_bad_numbers():
    assert usage_error(["list", "-f"]).message == "flag needs an argument: -f"
    e = usage_error(["create", "--preserve-fds", "x", "c1"])
    assert (e.stage, e.message) == ("command", 'invalid value "x" for flag -preserve-fds: parse error')
    e = usage_error(["create", "--preserve-fds", "99999999999999999999", "c1"])
    assert e.message.endswith(": value out of range")
    e = usage_error(["update", "--blkio-weight", "-1", "c1"])
    assert e.message == 'invalid value "-1" for flag -blkio-weight: parse error'


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("15", 15), ("-1", -1), ("+7", 7), ("0x10", 16), ("0X1f", 31), ("010", 8),
    ("0o17", 15), ("0b101", 5), ("1_000", None), ("0x_1F", 31), ("08", None), ("", None),
    (" 1", None), ("1 ", None), ("x", None), ("0x", None), ("٣", None),
])
def test_parse_int_like_go(text, value):
    if value is None:
        with pytest.raises(ValueError):
            flags.parse_int(text)
    else:
        assert flags.parse_int(text) == value


@pytest.mark.parametrize("text, seconds", [
    ("5s", 5.0), ("1m30s", 90.0), ("300ms", 0.3), ("1h", 3600.0), ("1.5s", 1.5), ("0", 0.0),
    ("-2s", -2.0), ("2us", 2e-6), ("2\u00b5s", 2e-6), ("", None), ("5", None), ("s", None),
    ("1x", None), ("1..2s", None),
])
def test_parse_duration_like_go(text, seconds):
    if seconds is None:
        with pytest.raises(ValueError):
            flags.parse_duration(text)
    else:
        assert flags.parse_duration(text) == pytest.approx(seconds)


def test_events_interval():
    assert parse(["events", "c1"]).opts["interval"] == 5.0
    assert parse(["events", "--interval", "1m", "--stats", "c1"]).opts == {"interval": 60.0,
                                                                           "stats": True}
    assert usage_error(["events", "--interval", "soon", "c1"]).message == \
        'invalid value "soon" for flag -interval: parse error'


def test_repeatable_flags():
    inv = parse(["exec", "-e", "A=1", "--env", "B=2", "-g", "10", "-g", "0x10", "--cap",
                 "CAP_KILL", "c1", "true"])
    assert inv.opts["env"] == ["A=1", "B=2"]
    assert inv.opts["additional_gids"] == [10, 16]
    assert inv.opts["cap"] == ["CAP_KILL"]
    e = usage_error(["exec", "-g", "x", "c1", "true"])
    assert e.message == ('invalid value "x" for flag -g: strconv.ParseInt: parsing "x": '
                         "invalid syntax")
    assert parse(["exec", "c1", "true"]).opts["env"] == []    # a fresh list every time


def test_exec_and_ps_do_not_reorder():
    inv = parse(["exec", "-t", "--user", "1:2", "c1", "ls", "-t", "-l", "--user"])
    assert inv.opts["tty"] and inv.opts["user"] == "1:2"
    assert inv.args == ["c1", "ls", "-t", "-l", "--user"]
    assert parse(["exec", "c1", "--", "sh", "-c", "x"]).args == ["c1", "sh", "-c", "x"]
    inv = parse(["ps", "c1", "-f", "json"])
    assert inv.opts["format"] == "table" and inv.args == ["c1", "-f", "json"]
    inv = parse(["ps", "-f", "json", "c1"])
    assert inv.opts["format"] == "json" and inv.args == ["c1"]
    assert parse(["ps", "c1", "--", "-o", "pid"]).args == ["c1", "-o", "pid"]
    assert usage_error(["exec", "-foo", "c1"]).message == "flag provided but not defined: -foo"


@pytest.mark.parametrize("argv, message", [
    (["state"], 'kago: "state" requires exactly 1 argument(s)'),
    (["state", "a", "b"], 'kago: "state" requires exactly 1 argument(s)'),
    (["start"], 'kago: "start" requires exactly 1 argument(s)'),
    (["create"], 'kago: "create" requires exactly 1 argument(s)'),
    (["run"], 'kago: "run" requires exactly 1 argument(s)'),
    (["delete"], 'kago: "delete" requires exactly 1 argument(s)'),
    (["kill"], 'kago: "kill" requires a minimum of 1 argument(s)'),
    (["kill", "a", "b", "c"], 'kago: "kill" requires a maximum of 2 argument(s)'),
    (["list", "x"], 'kago: "list" requires exactly 0 argument(s)'),
    (["spec", "x"], 'kago: "spec" requires exactly 0 argument(s)'),
    (["features", "x"], 'kago: "features" requires exactly 0 argument(s)'),
    (["ps"], 'kago: "ps" requires a minimum of 1 argument(s)'),
    (["exec"], 'kago: "exec" requires a minimum of 1 argument(s)'),
    (["pause"], 'kago: "pause" requires exactly 1 argument(s)'),
    (["resume"], 'kago: "resume" requires exactly 1 argument(s)'),
    (["events"], 'kago: "events" requires exactly 1 argument(s)'),
    (["update"], 'kago: "update" requires exactly 1 argument(s)'),
    (["checkpoint"], 'kago: "checkpoint" requires exactly 1 argument(s)'),
    (["restore"], 'kago: "restore" requires exactly 1 argument(s)'),
])
def test_argument_counts(argv, message):
    e = usage_error(argv)
    assert (e.stage, e.message, e.exit_code) == ("args", message, 1)


def test_every_command_has_a_function_and_help():
    assert set(commands.COMMANDS) == set(flags.COMMANDS)
    for name in flags.COMMANDS:
        text = helptext.command_help(name)
        assert text.startswith(f"NAME:\n   kago {name} - ")


# =========================================================================
# dispatch over a fake library
# =========================================================================

class FakeContainer:
    """Enough of kago.container.container.Container for the CLI."""

    registry = {}
    calls = []

    def __init__(self, root, id, status="created", pid=4242, bundle="/bundles/b",
                 exit_status=0, created="2026-11-28T11:29:42.240864546Z", annotations=None):
        self.root, self.id, self.status, self._pid = root, id, status, pid
        self.bundle, self.exit_status, self.created = bundle, exit_status, created
        self.annotations = annotations
        self.fail = {}          # verb -> exception to raise

    @property
    def pid(self):
        return 0 if self.status == "stopped" else self._pid

    @classmethod
    def add(cls, root, id, **kw):
        c = cls(root, id, **kw)
        cls.registry[(root, id)] = c
        return c

    @classmethod
    def load(cls, root, id):
        cls.calls.append(("load", root, id))
        try:
            return cls.registry[(root, id)]
        except KeyError:
            raise ContainerNotFound(id) from None

    @classmethod
    def list(cls, root):
        return [c for (r, _), c in sorted(cls.registry.items()) if r == root]

    def state(self):
        s = {"ociVersion": "1.2.0", "id": self.id, "pid": self.pid, "status": self.status,
             "bundle": self.bundle, "rootfs": self.bundle + "/rootfs",
             "created": self.created, "owner": ""}
        if self.annotations:
            s["annotations"] = self.annotations
        return s

    def _verb(self, name, *args):
        self.calls.append((name, self.id) + args)
        if name in self.fail:
            raise self.fail[name]

    def start(self, notify_socket=None, wait_ready=True):
        self._verb("start", *(() if notify_socket is None else (notify_socket, wait_ready)))
        if self.status != "created":
            raise InvalidState(self.id, self.status, "created")
        self.status = "running"

    def kill(self, signal="SIGTERM", all=False):
        self._verb("kill", signal, all)

    def delete(self, force=False):
        self._verb("delete", force)
        if self.status == "running" and not force:
            raise KagoError(f"cannot delete container {self.id} that is not stopped: running")
        self.registry.pop((self.root, self.id), None)

    def wait(self):
        self._verb("wait")
        self.status = "stopped"
        return self.exit_status


class FakeBuilder:
    """ContainerBuilder(id, root=, systemd_cgroup=).as_init(bundle, ...).build()."""

    made = []
    fail = None

    def __init__(self, id, root="/run/kago", systemd_cgroup=False, rootless="auto"):
        if "/" in id:
            from kago.errors import InvalidArgument
            raise InvalidArgument(f"invalid id format: {id}")
        self.id, self.root, self.systemd_cgroup = id, root, systemd_cgroup
        self.rootless = rootless

    def as_init(self, bundle, **opts):
        self.bundle, self.opts = bundle, opts
        return self

    def build(self):
        FakeBuilder.made.append(self)
        if FakeBuilder.fail:
            raise FakeBuilder.fail
        return FakeContainer.add(self.root, self.id, bundle=self.bundle)


@pytest.fixture
def fake(monkeypatch):
    FakeContainer.registry = {}
    FakeContainer.calls = []
    FakeBuilder.made = []
    FakeBuilder.fail = None
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    specs = []
    lib = commands.Library(Container=FakeContainer, ContainerBuilder=FakeBuilder,
                           write_default_spec=lambda bundle, rootless: specs.append(
                               (bundle, rootless)))
    monkeypatch.setattr(commands, "lib", lib)
    lib.specs = specs
    return lib


@pytest.fixture
def kago(capsys):
    """kago(*argv) -> (exit status, stdout, stderr), run in this process."""
    def run(*argv):
        code = cli.run(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return run


ROOT = "/run/kago"
ERR_LINE = re.compile(r'time="[^"]+" level=error msg=(.*)\n')


def err_msg(err):
    """The msg of the single logrus text line on stderr."""
    m = ERR_LINE.fullmatch(err)
    assert m, repr(err)
    return m.group(1)


def test_library_indirection_is_lazy():
    lib = commands.Library(Container="pinned")
    assert lib.Container == "pinned"
    with pytest.raises(AttributeError):
        lib.nosuch


def test_state_prints_runc_json(fake, kago):
    FakeContainer.add(ROOT, "c1", bundle="/b<&>é", annotations={"k": "v"})
    code, out, err = kago("state", "c1")
    assert (code, err) == (0, "")
    assert out == ('{\n  "ociVersion": "1.2.0",\n  "id": "c1",\n  "pid": 4242,\n'
                   '  "status": "created",\n  "bundle": "/b\\u003c\\u0026\\u003eé",\n'
                   '  "rootfs": "/b\\u003c\\u0026\\u003eé/rootfs",\n'
                   '  "created": "2026-11-28T11:29:42.240864546Z",\n  "owner": "",\n'
                   '  "annotations": {\n    "k": "v"\n  }\n}')          # no newline, as runc
    assert json.loads(out)["bundle"] == "/b<&>é"


def test_state_missing(fake, kago):
    code, out, err = kago("state", "nosuch")
    assert (code, out) == (1, "")
    assert err_msg(err) == '"container does not exist"'


def test_root_flag_made_absolute(fake, kago, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    FakeContainer.add(str(tmp_path / "r"), "c1")
    assert kago("--root", "r", "state", "c1")[0] == 0
    assert FakeContainer.calls[0] == ("load", str(tmp_path / "r"), "c1")
    code, out, err = kago("--root", "/", "state", "c1")
    assert code == 1 and err_msg(err) == '"Option --root argument should not be set to /"'


def test_start(fake, kago):
    c = FakeContainer.add(ROOT, "c1")
    assert kago("start", "c1") == (0, "", "")
    assert c.status == "running"
    code, _, err = kago("start", "c1")
    assert code == 1 and err_msg(err) == '"cannot start an already running container"'
    c.status = "stopped"
    code, _, err = kago("start", "c1")
    assert code == 1 and err_msg(err) == '"cannot start a container that has stopped"'


def test_kill(fake, kago):
    FakeContainer.add(ROOT, "c1", status="running")
    assert kago("kill", "c1")[0] == 0
    assert kago("kill", "--all", "c1", "9")[0] == 0
    assert kago("kill", "c1", "KILL")[0] == 0
    assert kago("kill", "c1", "")[0] == 0
    kills = [c[2:] for c in FakeContainer.calls if c[0] == "kill"]
    assert kills == [("SIGTERM", False), ("9", True), ("KILL", False), ("SIGTERM", False)]


def test_kill_errors(fake, kago):
    code, _, err = kago("kill", "nosuch", "9")
    assert code == 1 and err_msg(err) == '"container does not exist"'
    c = FakeContainer.add(ROOT, "c1", status="stopped")
    c.fail["kill"] = KagoError("container not running")
    code, _, err = kago("kill", "c1", "9")
    assert code == 1 and err_msg(err) == '"container not running"'
    c.fail["kill"] = InvalidState("c1", "stopped", "running")
    code, _, err = kago("kill", "c1")
    assert code == 1 and err_msg(err) == '"container not running"'


def test_delete(fake, kago):
    FakeContainer.add(ROOT, "c1", status="running")
    code, _, err = kago("delete", "c1")
    assert code == 1
    assert err_msg(err) == '"cannot delete container c1 that is not stopped: running"'
    assert kago("delete", "--force", "c1") == (0, "", "")
    assert ("delete", "c1", True) in FakeContainer.calls
    # a missing container: an error without --force, nothing with it (containerd's shim)
    code, _, err = kago("delete", "c1")
    assert code == 1 and err_msg(err) == '"container does not exist"'
    assert kago("delete", "-f", "c1") == (0, "", "")


def test_delete_invalid_state_wording(fake, kago):
    c = FakeContainer.add(ROOT, "c1", status="paused")
    c.fail["delete"] = InvalidState("c1", "paused", "stopped")
    code, _, err = kago("delete", "c1")
    assert err_msg(err) == '"cannot delete container c1 that is not stopped: paused"'


def test_create_passes_absolute_paths(fake, kago, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = kago("--systemd-cgroup", "create", "--pid-file", "p.pid",
                          "--console-socket", "tty.sock", "--preserve-fds", "2",
                          "--no-pivot", "-b", "bun", "c1")
    assert (code, out, err) == (0, "", "")
    (b,) = FakeBuilder.made
    assert (b.id, b.root, b.systemd_cgroup) == ("c1", ROOT, True)
    assert b.bundle == str(tmp_path / "bun")
    assert b.opts == {"pid_file": str(tmp_path / "p.pid"),
                      "console_socket": str(tmp_path / "bun" / "tty.sock"),
                      "no_pivot": True, "no_new_keyring": False, "preserve_fds": 2,
                      "detach": True, "notify_socket": None}


def test_notify_socket_is_passed_on(fake, kago, tmp_path, monkeypatch):
    # runc's NOTIFY_SOCKET: create sets the container up; start, and run -d,
    # wait for READY; run in the foreground passes it on while it waits
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    assert kago("create", "c1") == (0, "", "")
    assert FakeBuilder.made[-1].opts["notify_socket"] == "/run/systemd/notify"
    assert kago("start", "c1") == (0, "", "")
    assert FakeContainer.calls[-1] == ("start", "c1", "/run/systemd/notify", True)
    assert kago("run", "-d", "c2")[0] == 0
    assert ("start", "c2", "/run/systemd/notify", True) in FakeContainer.calls
    assert kago("run", "c3")[0] == 0
    assert ("start", "c3", "/run/systemd/notify", False) in FakeContainer.calls


def test_create_defaults(fake, kago, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert kago("create", "c1")[0] == 0
    (b,) = FakeBuilder.made
    assert b.bundle == str(tmp_path) and b.systemd_cgroup is False
    assert b.opts["pid_file"] is None and b.opts["console_socket"] is None
    # an absolute console socket stays as it is
    assert kago("create", "--console-socket", "/run/s.sock", "-b", "/b", "c2")[0] == 0
    assert FakeBuilder.made[1].opts["console_socket"] == "/run/s.sock"


def test_create_failure_is_prefixed(fake, kago):
    FakeBuilder.fail = SpecError("process.args", "must not be empty")
    code, out, err = kago("create", "-b", "/b", "c1")
    assert code == 1 and out == ""
    assert err_msg(err) == '"kago create failed: config.json: process.args: must not be empty"'
    FakeBuilder.fail = None
    code, _, err = kago("create", "a/b")
    assert err_msg(err) == '"kago create failed: invalid id format: a/b"'


def test_run_foreground(fake, kago):
    FakeBuilder.fail = None
    orig_build = FakeBuilder.build

    def build(self):
        c = orig_build(self)
        c.exit_status = 3
        return c
    FakeBuilder.build = build
    try:
        code, out, err = kago("run", "-b", "/b", "c1")
    finally:
        FakeBuilder.build = orig_build
    assert (code, out, err) == (3, "", "")
    verbs = [c[0] for c in FakeContainer.calls]
    assert verbs == ["start", "wait", "delete"]
    assert FakeBuilder.made[0].opts["detach"] is False
    assert ("delete", "c1", True) in FakeContainer.calls
    assert FakeContainer.registry == {}


def test_run_detached_and_keep(fake, kago):
    assert kago("run", "-d", "-b", "/b", "c1") == (0, "", "")
    assert [c[0] for c in FakeContainer.calls] == ["start"]
    assert FakeBuilder.made[0].opts["detach"] is True
    FakeContainer.calls.clear()
    assert kago("run", "--keep", "-b", "/b", "c2")[0] == 0
    assert [c[0] for c in FakeContainer.calls] == ["start", "wait"]
    assert (ROOT, "c2") in FakeContainer.registry


def test_run_start_failure_destroys(fake, kago):
    orig_start = FakeContainer.start

    def start(self, *args, **kwargs):
        raise KagoError('exec: "/nonexistent": stat /nonexistent: no such file or directory')
    FakeContainer.start = start
    try:
        code, _, err = kago("run", "-b", "/b", "c1")
    finally:
        FakeContainer.start = orig_start
    assert code == 1
    assert err_msg(err) == ('"kago run failed: exec: \\"/nonexistent\\": stat /nonexistent: '
                            'no such file or directory"')
    assert ("delete", "c1", True) in FakeContainer.calls


def test_run_interrupted(fake, kago):
    orig_wait = FakeContainer.wait

    def wait(self):
        raise KeyboardInterrupt
    FakeContainer.wait = wait
    try:
        code, _, _ = kago("run", "-b", "/b", "c1")
    finally:
        FakeContainer.wait = orig_wait
    assert code == 130
    assert ("delete", "c1", True) in FakeContainer.calls


def test_list_empty(fake, kago):
    assert kago("list") == (0, "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n",
                            "")
    assert kago("list", "-f", "json") == (0, "null\n", "")
    assert kago("list", "--format=json") == (0, "null\n", "")
    assert kago("list", "-q") == (0, "", "")


def test_list_table_and_json(fake, kago, tmp_path):
    root = str(tmp_path)
    for cid in ("c2", "c1"):
        os.mkdir(tmp_path / cid)
        FakeContainer.add(root, cid, bundle="/tmp/bun")
    FakeContainer.registry[(root, "c2")].status = "stopped"
    import pwd
    owner = pwd.getpwuid(os.getuid()).pw_name
    code, out, _ = kago("--root", root, "list")
    assert code == 0
    assert out == (
        "ID          PID         STATUS      BUNDLE      CREATED                          OWNER\n"
        f"c1          4242        created     /tmp/bun    2026-11-28T11:29:42.240864546Z   {owner}\n"
        f"c2          0           stopped     /tmp/bun    2026-11-28T11:29:42.240864546Z   {owner}\n")
    code, out, _ = kago("--root", root, "list", "--format", "json")
    assert out == (
        '[{"ociVersion":"1.2.0","id":"c1","pid":4242,"status":"created","bundle":"/tmp/bun",'
        '"rootfs":"/tmp/bun/rootfs","created":"2026-11-28T11:29:42.240864546Z",'
        f'"owner":"{owner}"}},'
        '{"ociVersion":"1.2.0","id":"c2","pid":0,"status":"stopped","bundle":"/tmp/bun",'
        '"rootfs":"/tmp/bun/rootfs","created":"2026-11-28T11:29:42.240864546Z",'
        f'"owner":"{owner}"}}]\n')
    assert kago("--root", root, "list", "-q") == (0, "c1\nc2\n", "")
    # -q wins over a bad format, as in runc
    assert kago("--root", root, "list", "-q", "-f", "bogus")[0] == 0


def test_list_bad_format(fake, kago):
    code, out, err = kago("list", "-f", "yaml")
    assert (code, out) == (1, "")
    assert err_msg(err) == '"invalid format option"'


def test_list_wide_cells(fake, kago):
    FakeContainer.add(ROOT, "a-rather-long-container-id", bundle="/b")
    out = kago("list")[1].splitlines()
    assert out[0].startswith("ID                           PID ")
    assert out[1].startswith("a-rather-long-container-id   4242 ")


def test_spec(fake, kago, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert kago("spec") == (0, "", "")
    assert kago("spec", "--rootless", "-b", "sub") == (0, "", "")
    assert fake.specs == [(str(tmp_path), False), (str(tmp_path / "sub"), True)]


def test_unexpected_exception_one_line(fake, kago):
    c = FakeContainer.add(ROOT, "c1")
    c.fail["start"] = RuntimeError("oops")
    code, out, err = kago("start", "c1")
    assert code == 1
    assert err_msg(err) == '"RuntimeError: oops"'
    code, out, err = kago("--debug", "start", "c1")
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert err.rstrip("\n").splitlines()[-1].endswith('msg="RuntimeError: oops"')


def test_os_error_reads_like_go(fake, kago):
    c = FakeContainer.add(ROOT, "c1")
    c.fail["start"] = FileNotFoundError(2, "No such file or directory", "/x/y")
    assert err_msg(kago("start", "c1")[2]) == '"/x/y: no such file or directory"'


def test_keyboard_interrupt_is_130(fake, kago):
    c = FakeContainer.add(ROOT, "c1")
    c.fail["start"] = KeyboardInterrupt()
    assert kago("start", "c1")[0] == 130


# ---- where messages go -----------------------------------------------------

def test_log_file_json_and_bare_stderr(fake, kago, tmp_path):
    logf = tmp_path / "log.json"
    code, out, err = kago("--log", str(logf), "--log-format", "json", "state", "nosuch")
    assert (code, out, err) == (1, "", "container does not exist\n")
    last = json.loads(logf.read_text().splitlines()[-1])
    assert (last["level"], last["msg"]) == ("error", "container does not exist")
    assert list(last) == ["level", "msg", "time"]


def test_log_file_text(fake, kago, tmp_path):
    logf = tmp_path / "log"
    code, out, err = kago("--log", str(logf), "start", "nosuch")
    assert (code, err) == (1, "container does not exist\n")
    assert err_msg(logf.read_text()) == '"container does not exist"'


def test_log_format_json_without_file(fake, kago):
    code, out, err = kago("--log-format", "json", "state", "nosuch")
    assert json.loads(err)["msg"] == "container does not exist"


def test_log_setup_errors(fake, kago, tmp_path):
    code, out, err = kago("--log-format", "xml", "state", "c1")
    assert code == 1 and err_msg(err) == '"invalid log-format: xml"'
    code, out, err = kago("--log", str(tmp_path / "no" / "log"), "state", "c1")
    assert code == 1
    assert err_msg(err) == f'"open {tmp_path}/no/log: no such file or directory"'


def test_usage_error_output(fake, kago, tmp_path):
    code, out, err = kago("state")
    assert code == 1
    assert out == "Incorrect Usage.\n\n" + helptext.command_help("state")
    assert err_msg(err) == '"kago: \\"state\\" requires exactly 1 argument(s)"'
    code, out, err = kago("state", "-foo", "c1")
    assert out == ("Incorrect Usage: flag provided but not defined: -foo\n\n"
                   + helptext.command_help("state"))
    assert err_msg(err) == '"flag provided but not defined: -foo"'
    code, out, err = kago("-foo", "state")
    assert out == "Incorrect Usage. flag provided but not defined: -foo\n\n" + helptext.app_help()
    # logged to the --log file and printed bare, like every failure
    logf = tmp_path / "l"
    code, out, err = kago("--log", str(logf), "--log-format", "json", "kill")
    assert err == 'kago: "kill" requires a minimum of 1 argument(s)\n'
    assert json.loads(logf.read_text())["msg"] == 'kago: "kill" requires a minimum of 1 argument(s)'


def test_global_usage_error_ignores_log_flags(fake, kago, tmp_path):
    # logging is not set up yet when the global flags fail to parse (as in runc)
    logf = tmp_path / "l"
    code, out, err = kago("--log", str(logf), "-foo", "state")
    assert code == 1 and not logf.exists()
    assert err_msg(err) == '"flag provided but not defined: -foo"'


def test_unknown_command_exit_3(fake, kago, tmp_path):
    code, out, err = kago("nosuchcmd")
    assert (code, out) == (3, "")
    assert err_msg(err) == '"No help topic for \'nosuchcmd\'\\n"'
    logf = tmp_path / "l"
    code, out, err = kago("--log", str(logf), "--log-format", "json", "help", "nosuch")
    assert (code, err) == (3, "No help topic for 'nosuch'\n")
    assert json.loads(logf.read_text())["msg"] == "No help topic for 'nosuch'\n"


def test_help_and_version_output(fake, kago):
    import kago as pkg
    assert kago("--version") == (0, f"kago version {pkg.__version__}\nspec: {pkg.OCI_VERSION}\n", "")
    assert kago("-v")[1].startswith("kago version ")
    code, out, err = kago("--help")
    assert code == 0 and out == helptext.app_help() and err == ""
    assert out.startswith("NAME:\n   kago - Open Container Initiative runtime\n")
    assert "\nVERSION:\n   %s\nspec: %s\n" % (pkg.__version__, pkg.OCI_VERSION) in out
    assert kago()[1] == out
    assert kago("help")[1] == out
    code, out, _ = kago("kill", "--help")
    assert code == 0 and out == helptext.command_help("kill")
    assert "   --all, -a  send the specified signal to all processes inside the container\n" in out
    assert kago("help", "kill")[1] == out


def test_main_exits(fake):
    with pytest.raises(SystemExit) as ei:
        cli.main(["state", "nosuch"])
    assert ei.value.code == 1


# =========================================================================
# the hot path imports next to nothing
# =========================================================================

FORBIDDEN = ("argparse", "logging", "typing", "datetime", "re", "json", "dataclasses",
             "kago.container", "kago.cli.helptext", "kago.cli.commands")


@pytest.mark.parametrize("argv", [
    ["state", "c1"], ["--root", "/r", "start", "c1"], ["kill", "--all", "c1", "9"],
    ["--log", "/l", "--log-format", "json", "delete", "--force", "c1"],
    ["create", "-b", "/b", "--pid-file", "/p", "c1"],
])
def test_parse_imports_nothing_heavy(argv):
    code = ("import sys\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "from kago.cli import parse\n"
            f"inv = parse({argv!r})\n"
            "assert inv.action == 'run', inv\n"
            "print(' '.join(sorted(sys.modules)))\n")
    res = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    loaded = set(res.stdout.split())
    assert not loaded & set(FORBIDDEN), sorted(loaded & set(FORBIDDEN))
    assert not any(m.startswith("kago.container") for m in loaded)


def test_state_path_imports(tmp_path):
    # the whole `kago state` run (against the real library): no argparse/logging/typing/...
    code = ("import sys\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "from kago.cli import run\n"
            f"rc = run(['--root', {str(tmp_path)!r}, 'state', 'nosuch'])\n"
            "assert rc == 1, rc\n"
            "print(' '.join(sorted(sys.modules)), file=sys.stdout)\n")
    res = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    loaded = set(res.stdout.split())
    for heavy in ("argparse", "logging", "typing", "datetime", "dataclasses",
                  "kago.cli.helptext"):
        assert heavy not in loaded, heavy


# what each hot verb may load beyond its own module (no kago.log, no kago.errors
# unless something is raised, no os (kago._os), nothing of the fork chain, no
# freezer unless paused); the verbs run for real against a state dir whose
# "init" is a sleep
HOT_NEVER = ("kago.log", "kago.process", "kago.process.main", "kago.cgroups.freezer",
             "kago.cli.helptext", "kago.spec", "kago.hooks", "ctypes", "json", "re",
             "signal", "subprocess", "shutil", "enum", "os")


@pytest.mark.parametrize("argv,also_never", [
    (["state", "c1"], ("kago.errors", "kago.cgroups.v1", "kago.pidfd")),
    (["start", "c1"], ("kago.errors", "kago.cgroups.v1", "kago.pidfd")),
    (["kill", "c1", "KILL"], ("kago.errors", "kago.cgroups.v1", "kago.pidfd")),
    (["delete", "--force", "c1"], ("kago.errors",)),
])
def test_hot_verbs_import_set(tmp_path, argv, also_never):
    fifo = tmp_path / "c1" / "exec.fifo"
    (tmp_path / "c1").mkdir()
    if argv[0] == "start":      # a created container: "init" writes 0 and execs
        os.mkfifo(fifo)
        sleeper = subprocess.Popen(["sh", "-c", f"printf 0 > {fifo}; exec sleep 30"])
    else:
        sleeper = subprocess.Popen(["sleep", "30"])
    try:
        with open(f"/proc/{sleeper.pid}/stat", "rb") as f:
            start_time = int(f.read().rsplit(b")", 1)[1].split()[19])
        sd = tmp_path / "c1"
        (sd / "state.json").write_text(json.dumps({
            "ociVersion": "1.2.0", "id": "c1", "pid": sleeper.pid, "start_time": start_time,
            "status": "created", "bundle": str(tmp_path), "rootfs": str(tmp_path),
            "created": "2026-11-28T00:00:00Z", "owner": "", "cgroup_dirs": {}}))
        (sd / "kago.json").write_text(json.dumps({
            "hooks": {}, "cgroup": {"driver": "v1", "path": "/c1", "dirs": {}},
            "systemd": False, "namespaces": [], "process": {}}))
        code = ("import sys\n"
                f"sys.path.insert(0, {str(REPO)!r})\n"
                "from kago.cli import run\n"
                f"rc = run(['--root', {str(tmp_path)!r}] + {argv!r})\n"
                "print('\\nRC', rc, ' '.join(sorted(sys.modules)))\n")
        res = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True,
                             text=True, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, res.stderr
        rc, _, mods = res.stdout.rpartition("\nRC ")[2].partition(" ")
        assert rc == "0", res.stdout + res.stderr
        if argv[0] == "state":
            assert '"status": "running"' in res.stdout, res.stdout
        loaded = set(mods.split())
        assert not loaded & set(HOT_NEVER + also_never), sorted(loaded & set(HOT_NEVER + also_never))
    finally:
        sleeper.kill()
        sleeper.wait()


# =========================================================================
# byte for byte the same as runc (when runc is installed)
# =========================================================================

RUNC = shutil.which("runc") or ("/usr/sbin/runc" if os.path.exists("/usr/sbin/runc") else None)
needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed")


def _normalize_runc(text):
    text = text.replace("github.com/opencontainers/runc/", "\0").replace("runc", "kago")
    text = text.replace("\0", "github.com/opencontainers/runc/")
    import kago as pkg
    return re.sub(r"VERSION:\n   .*?\n\n",
                  f"VERSION:\n   {pkg.__version__}\nspec: {pkg.OCI_VERSION}\n\n", text, flags=re.S)


def _times(text):
    return re.sub(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)', "TIME", text)


def _run_both(tmp_path, argv, log_format=None):
    res = {}
    for name in ("runc", "kago"):
        root = tmp_path / f"{name}-root"
        root.mkdir(exist_ok=True)
        logf = tmp_path / f"{name}.log"
        pre = ["--root", str(root)]
        if log_format:
            pre += ["--log", str(logf), "--log-format", log_format]
        if name == "runc":
            cmd = [RUNC] + pre + argv
        else:
            cmd = [sys.executable, "-IS", "-c",
                   f"import sys; sys.path.insert(0, {str(REPO)!r}); from kago.cli import main; "
                   "main(sys.argv[1:])"] + pre + argv
        if name == "runc":          # runc names itself by os.Args[0] in some messages
            cmd[0] = "runc"
        p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           cwd=tmp_path, executable=RUNC if name == "runc" else None)
        out, err = p.stdout, p.stderr
        logtext = logf.read_text() if logf.exists() else ""
        if name == "runc":
            out, err, logtext = map(_normalize_runc, (out, err, logtext))
        res[name] = (p.returncode, out, _times(err), _times(logtext))
    return res


SAME_AS_RUNC = [
    ["state"], ["state", "a", "b"], ["kill"], ["kill", "a", "b", "c"], ["delete"],
    ["list", "x"], ["spec", "x"], ["state", "-foo", "x"], ["-foo", "state", "x"],
    ["nosuchcmd"], ["help", "nosuch"], ["list", "-f"], ["list", "-fjson"],
    ["delete", "-f=maybe", "x"], ["create", "--preserve-fds", "x", "c2"],
    ["state", "---foo", "x"], ["--root"], ["--debug=xx", "state", "x"],
    ["--log-format", "foo", "state", "x"], ["--log", "/nonexistent/dir/l", "state", "x"],
    ["state", "nosuch"], ["start", "nosuch"], ["kill", "nosuch"], ["kill", "-a", "nosuch", "9"],
    ["delete", "nosuch"], ["delete", "-f", "nosuch"], ["delete", "nosuch", "--force"],
    ["delete", "--force", "--", "nosuch"], ["delete", "nosuch", "--", "-f"],
    ["state", "-foo", "x", "--"], ["list"], ["list", "-f", "json"], ["list", "-q"],
    ["list", "-f", "bogus"], ["pause"], ["ps"], ["exec"], ["events"], ["update"],
    ["features", "x"], ["checkpoint"], ["restore"],
]


@needs_runc
@pytest.mark.parametrize("argv", SAME_AS_RUNC, ids=" ".join)
def test_same_as_runc(tmp_path, argv):
    res = _run_both(tmp_path, argv)
    assert res["kago"] == res["runc"]


@needs_runc
@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("argv", [["state", "nosuch"], ["state"], ["state", "-foo", "x"],
                                  ["nosuchcmd"], ["list", "-f", "bogus"], ["list", "-f", "json"],
                                  ["delete", "-f", "nosuch"]], ids=" ".join)
def test_same_as_runc_with_log_file(tmp_path, argv, fmt):
    res = _run_both(tmp_path, argv, log_format=fmt)
    assert res["kago"] == res["runc"]


@needs_runc
@pytest.mark.parametrize("name", [None] + list(flags.COMMANDS))
def test_help_same_as_runc(tmp_path, name):
    argv = ["--help"] if name is None else [name, "--help"]
    res = _run_both(tmp_path, argv)
    assert res["kago"] == res["runc"]
