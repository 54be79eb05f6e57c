"""One function per kago command.

Each ``cmd_<name>(inv)`` takes a parsed :class:`kago.cli.flags.Invocation`
(``inv.root``, ``inv.opts``, ``inv.args``), does its work through the library
and returns the exit code; failures are raised (library errors, or
:class:`CommandError` for the CLI's own) and turned into runc's messages by
:func:`error_message`.  ``COMMANDS`` maps a command name to its function; a
new command is one function here plus one row in ``flags.COMMANDS``.

Command functions reach the library only through ``lib`` (a
:class:`Library`), which imports ``kago.container`` & co. on first use, so
``kago state`` imports what ``state`` needs and nothing else.  Tests inject a
fake with ``monkeypatch.setattr(commands, "lib", Library(Container=Fake))``.
"""

import sys

from kago.cli.flags import PROG


class Library:
    """Lazy handles on the library objects the commands use.

    ``Library(Container=Fake)`` pins some of them (for tests); the others
    are imported from their modules on first use.
    """

    _WHERE = {
        "ContainerBuilder": "kago.container.builder",
        "Container": "kago.container.container",
        "write_default_spec": "kago.spec",
    }

    def __init__(self, **objects):
        self.__dict__.update(objects)

    def __getattr__(self, name):
        mod = self._WHERE.get(name)
        if mod is None:
            raise AttributeError(name)
        value = getattr(__import__(mod, fromlist=[name]), name)
        self.__dict__[name] = value
        return value


lib = Library()


class CommandError(Exception):
    """A failure found by the CLI itself; ``str()`` is the whole message."""


def _out(text):
    sys.stdout.write(text)
    sys.stdout.flush()


# --- create / run -----------------------------------------------------------

def _build(inv, detach):
    """ContainerBuilder(...).as_init(...).build() from create/run's flags.

    Paths are made absolute here as runc does: the pid file against the
    current directory, the bundle too, and the console socket against the
    bundle (runc connects to it after chdir-ing into the bundle).
    """
    from kago import _os as os
    o = inv.opts
    bundle = os.path.abspath(o["bundle"] or ".")
    pid_file = os.path.abspath(o["pid_file"]) if o["pid_file"] else None
    console_socket = os.path.join(bundle, o["console_socket"]) if o["console_socket"] else None
    builder = lib.ContainerBuilder(inv.args[0], root=inv.root,
                                   systemd_cgroup=inv.globals["systemd_cgroup"],
                                   rootless=inv.globals["rootless"])
    return builder.as_init(bundle, pid_file=pid_file, console_socket=console_socket,
                           no_pivot=o["no_pivot"], no_new_keyring=o["no_new_keyring"],
                           preserve_fds=o["preserve_fds"], detach=detach,
                           notify_socket=os.getenv("NOTIFY_SOCKET")).build()


def cmd_create(inv):
    _build(inv, detach=True)
    return 0


def cmd_run(inv):
    o = inv.opts
    mask = None
    if not o["detach"]:
        # hold the signals we forward until wait() forwards them: one that
        # came between start and wait would kill us and orphan the container
        import _signal
        from kago.container.run import FORWARD
        mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, FORWARD)
    # imported before _build forks: afterwards every page main writes while
    # the intermediate and init share it is a copy-on-write fault
    from kago.container import start  # noqa: F401
    if not o["keep"]:
        from kago.container import delete  # noqa: F401
    try:
        c = _build(inv, detach=o["detach"])
    except BaseException:
        if mask is not None:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
        raise
    from kago import _os as os
    try:
        # -d returns once an sd_notify READY was passed on; in the foreground
        # it is passed on while we wait
        c.start(os.getenv("NOTIFY_SOCKET"), wait_ready=o["detach"])
        if o["detach"]:
            return 0
        status = c.wait()
    except BaseException:
        if mask is not None:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
        if not o["keep"]:
            _destroy(c)
        raise
    if not o["keep"]:
        _destroy(c)
    return status


def _destroy(c):
    """Delete a container after `run`; a failure is logged, as runc does."""
    try:
        c.delete(force=True)
    except Exception as e:
        from kago import log
        log.error(error_message("delete", e))


# --- the verbs on an existing container ---------------------------------

def cmd_start(inv):
    from kago import _os as os
    lib.Container.load(inv.root, inv.args[0]).start(os.getenv("NOTIFY_SOCKET"))
    return 0


def cmd_state(inv):
    c = lib.Container.load(inv.root, inv.args[0])
    st = c.state()
    from kago.cli.output import dumps
    _out(dumps(st, indent="  "))               # runc prints no trailing newline
    return 0


def cmd_kill(inv):
    c = lib.Container.load(inv.root, inv.args[0])
    # the library parses the signal (kago.signals: 9, KILL, SIGKILL, sigkill, RTMIN+3)
    # after the container is found, in runc's order
    sig = inv.args[1] if len(inv.args) > 1 and inv.args[1] else "SIGTERM"
    c.kill(sig, all=inv.opts["all"])
    return 0


def cmd_delete(inv):
    force = inv.opts["force"]
    try:
        c = lib.Container.load(inv.root, inv.args[0])
    except Exception as e:      # kago.errors only when something was raised
        from kago.errors import ContainerDamaged, ContainerNotFound
        if not isinstance(e, (ContainerNotFound, ContainerDamaged)):
            raise
        # a damaged state dir, or one a killed create left without state.json:
        # removed (runc removes the latter with or without --force) so the id
        # can be used again; what runs is killed only with --force
        from kago.container.delete import delete_remains
        try:
            delete_remains(inv.root, inv.args[0], force)
        except ContainerNotFound:
            if force:           # containerd's shim: `delete ID` then `delete --force ID`
                return 0
            raise
        if isinstance(e, ContainerNotFound) and not force:
            raise e             # runc: "container does not exist", and the dir is gone
        return 0
    try:
        c.delete(force=force)
    except Exception as e:
        from kago.errors import ContainerNotFound
        if force and isinstance(e, ContainerNotFound):
            return 0            # a concurrent delete removed it after we loaded it
        raise
    return 0


# --- list / spec ------------------------------------------------------------

def cmd_list(inv):
    quiet = inv.opts["quiet"]
    fmt = inv.opts["format"]
    items = []
    for c in sorted(lib.Container.list(inv.root), key=lambda c: c.id):
        if quiet:
            items.append((c, None))
            continue
        if getattr(c, "damaged", ""):         # listed as such; the rest as usual
            sys.stderr.write(f"container {c.id}: state is damaged ({c.damaged}): "
                             f"\"{PROG} delete --force {c.id}\" removes it\n")
            items.append((c, {"id": c.id, "pid": 0, "status": "damaged"}))
            continue
        try:
            st = c.state()
        except Exception as e:                  # vanished meanwhile: runc skips it
            sys.stderr.write(f"state for {c.id}: {error_message('state', e)}\n")
            continue
        items.append((c, st))
    if quiet:
        _out("".join(f"{c.id}\n" for c, _ in items))
        return 0
    if fmt == "table":
        from kago.cli.output import tabwrite
        rows = ["ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n"]
        for c, st in items:
            rows.append(f"{st.get('id', c.id)}\t{st.get('pid') or 0}\t{st.get('status', '')}\t"
                        f"{st.get('bundle', '')}\t{st.get('created', '')}\t"
                        f"{_owner(inv.root, c.id, st)}\n")
        _out(tabwrite("".join(rows), minwidth=12, padding=3))
    elif fmt == "json":
        from kago.cli.output import dumps
        out = []
        for c, st in items:
            d = {k: st.get(k, "") for k in ("ociVersion", "id", "pid", "status", "bundle",
                                             "rootfs", "created")}
            d["pid"] = st.get("pid") or 0
            if st.get("annotations"):
                d["annotations"] = st["annotations"]
            d["owner"] = _owner(inv.root, c.id, st)
            out.append(d)
        _out(dumps(out or None) + "\n")       # runc: `null` for no containers
    else:
        raise CommandError("invalid format option")
    return 0


def _owner(root, cid, st):
    """The user owning the container's state directory (runc's OWNER column)."""
    from kago import _os as os
    try:
        uid = os.stat(os.path.join(root, cid)).st_uid
    except OSError:
        return st.get("owner", "")
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f"#{uid}"


def cmd_spec(inv):
    from kago import _os as os
    lib.write_default_spec(os.path.abspath(inv.opts["bundle"] or "."), inv.opts["rootless"])
    return 0


def cmd_ps(inv):
    """runc ps: json (the pid array) or ps's table filtered to the container."""
    fmt = inv.opts.get("format") or "table"
    if fmt not in ("table", "json"):
        raise CommandError(f"invalid format option {fmt!r}")
    c = lib.Container.load(inv.root, inv.args[0])
    out = c.ps(fmt, inv.args[1:] or None)
    _out(out if fmt == "table" else out + "\n")
    return 0


def cmd_exec(inv):
    """runc exec: --process FILE, or the container's process with the args and
    flags applied (env appended so -e wins, --cap into the bounding, effective
    and permitted sets, and ambient when inheritable is set)."""
    from kago import _os as os
    o = inv.opts
    c = lib.Container.load(inv.root, inv.args[0])
    if o.get("process"):
        from kago import _json
        try:
            with open(o["process"], "rb") as f:
                p = _json.loads(f.read())
        except OSError as e:
            raise CommandError(f"open {o['process']}: {e.strerror.lower()}") from None
        except ValueError as e:
            raise CommandError(f"{o['process']}: invalid JSON: {e}") from None
        except RecursionError:
            raise CommandError(f"{o['process']}: invalid JSON: nested too deeply") from None
    else:
        if len(inv.args) < 2:
            raise CommandError("process args cannot be empty")
        from kago import _json   # a deep copy without `copy` (weakref, collections.abc)
        p = _json.loads(_json.dumps(c.config().get("process") or {}))
        p["args"] = list(inv.args[1:])
        p["terminal"] = bool(o.get("tty"))
        if o.get("env"):
            p["env"] = list(p.get("env") or []) + list(o["env"])
        if o.get("cwd"):
            p["cwd"] = o["cwd"]
        user = dict(p.get("user") or {})
        if o.get("user"):
            u, _, g = o["user"].partition(":")
            try:
                user["uid"] = int(u)
                if g:
                    user["gid"] = int(g)
            except ValueError:
                raise CommandError(f"parsing {o['user']} as uid[:gid]: invalid syntax") \
                    from None
        if o.get("additional_gids"):
            user["additionalGids"] = list(o["additional_gids"])
        p["user"] = user
        if o.get("cap"):
            caps = dict(p.get("capabilities") or {})
            for cap in o["cap"]:
                for k in ("bounding", "effective", "permitted"):
                    caps[k] = list(caps.get(k) or []) + [cap]
                if caps.get("inheritable") is not None:
                    caps["ambient"] = list(caps.get("ambient") or []) + [cap]
            p["capabilities"] = caps
        if o.get("no_new_privs"):
            p["noNewPrivileges"] = True
        if o.get("apparmor"):
            p["apparmorProfile"] = o["apparmor"]
        if o.get("process_label"):
            p["selinuxLabel"] = o["process_label"]
    cg = list(o.get("cgroup") or ())   # checked by kago.cgroups.parse_sub_cgroups
    pid_file = os.path.abspath(o["pid_file"]) if o.get("pid_file") else None
    sock = os.path.abspath(o["console_socket"]) if o.get("console_socket") else None
    rc = c.exec(p, detach=bool(o.get("detach")), pid_file=pid_file, console_socket=sock,
                preserve_fds=o.get("preserve_fds") or 0, cgroup=cg,
                ignore_paused=bool(o.get("ignore_paused")))
    return 0 if o.get("detach") else rc


# --- checkpoint / restore (CRIU) ------------------------------------------------

def cmd_checkpoint(inv):
    """runc checkpoint: the flags are checked before criu runs."""
    o = inv.opts
    c = lib.Container.load(inv.root, inv.args[0])
    c.checkpoint(o["image_path"] or None, work_path=o["work_path"] or None,
                 parent_path=o["parent_path"] or None, leave_running=o["leave_running"],
                 tcp_established=o["tcp_established"], ext_unix_sk=o["ext_unix_sk"],
                 shell_job=o["shell_job"], file_locks=o["file_locks"], pre_dump=o["pre_dump"],
                 manage_cgroups_mode=o["manage_cgroups_mode"] or None,
                 empty_ns=o["empty_ns"] or (), auto_dedup=o["auto_dedup"],
                 lazy_pages=o["lazy_pages"], status_fd=o["status_fd"],
                 page_server=o["page_server"] or None, criu=inv.globals["criu"])
    return 0


def cmd_restore(inv):
    """runc restore: a new container from the image; in the foreground kago
    waits for it and exits with its status (then deletes it), as runc."""
    from kago import _os as os
    o = inv.opts
    bundle = os.path.abspath(o["bundle"] or ".")
    builder = lib.ContainerBuilder(inv.args[0], root=inv.root,
                                   systemd_cgroup=inv.globals["systemd_cgroup"])
    c = builder.as_restore(
        bundle, image_path=o["image_path"] or None, work_path=o["work_path"] or None,
        console_socket=(os.path.abspath(o["console_socket"]) if o["console_socket"] else None),
        detach=o["detach"],
        pid_file=os.path.abspath(o["pid_file"]) if o["pid_file"] else None,
        no_subreaper=o["no_subreaper"], no_pivot=o["no_pivot"],
        tcp_established=o["tcp_established"], ext_unix_sk=o["ext_unix_sk"],
        shell_job=o["shell_job"], file_locks=o["file_locks"],
        manage_cgroups_mode=o["manage_cgroups_mode"] or None, empty_ns=o["empty_ns"] or (),
        auto_dedup=o["auto_dedup"], lazy_pages=o["lazy_pages"],
        lsm_profile=o["lsm_profile"] or None, lsm_mount_context=o["lsm_mount_context"] or None,
        criu=inv.globals["criu"]).build()
    if o["detach"]:
        return 0
    try:
        status = c.wait()
    finally:
        _destroy(c)
    return status


def cmd_features(inv):
    """runc features: the OCI features document (kago.spec.features)."""
    from kago.cli.output import dumps
    from kago.spec.features import features
    _out(dumps(features(), indent="    ") + "\n")
    return 0


# --- cgroups: pause / resume / events / update ---------------------------------

def cmd_pause(inv):
    lib.Container.load(inv.root, inv.args[0]).pause()
    return 0


def cmd_resume(inv):
    lib.Container.load(inv.root, inv.args[0]).resume()
    return 0


def cmd_events(inv):
    """One JSON event per line, as runc's json.Encoder writes them."""
    import json
    from kago.errors import InvalidState
    c = lib.Container.load(inv.root, inv.args[0])
    if inv.opts["interval"] <= 0:
        raise CommandError("duration interval must be greater than 0")
    try:
        for ev in c.events(interval=inv.opts["interval"], stats=inv.opts["stats"]):
            _out(json.dumps(ev, separators=(",", ":")) + "\n")
    except InvalidState:
        raise CommandError(f"container with id {c.id} is not running") from None
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    return 0


def cmd_update(inv):
    """runc update: ``-r FILE|-`` (a linux.resources object), or the flags."""
    import json
    o = inv.opts
    c = lib.Container.load(inv.root, inv.args[0])
    if o["resources"]:
        try:
            if o["resources"] == "-":
                r = json.load(sys.stdin)
            else:
                with open(o["resources"]) as f:
                    r = json.load(f)
        except OSError as e:
            raise CommandError("open " + os_error_text(e)) from None   # Go: "open F: ..."
        except ValueError as e:
            raise CommandError(f"unable to parse resources: {e}") from None
        except RecursionError:
            raise CommandError("unable to parse resources: nested too deeply") from None
        if not isinstance(r, dict):
            raise CommandError("unable to parse resources: not a JSON object")
    else:
        r = _update_flags(o)
    c.update(r)
    return 0


def _update_flags(o):
    mem, cpu = {}, {}
    r = {"memory": mem, "cpu": cpu}
    if o["blkio_weight"]:
        r["blockIO"] = {"weight": o["blkio_weight"]}
    if o["cpuset_cpus"]:
        cpu["cpus"] = o["cpuset_cpus"]
    if o["cpuset_mems"]:
        cpu["mems"] = o["cpuset_mems"]
    for flag, k, signed in (("cpu-period", "period", False),
                            ("cpu-rt-period", "realtimePeriod", False),
                            ("cpu-share", "shares", False),
                            ("cpu-quota", "quota", True),
                            ("cpu-rt-runtime", "realtimeRuntime", True)):
        val = o[flag.replace("-", "_")]
        if val:
            try:
                v = int(val, 10)
                if v < 0 and not signed:
                    raise ValueError
            except ValueError:
                kind = "ParseInt" if signed else "ParseUint"
                raise CommandError(f"invalid value for {flag}: strconv.{kind}: "
                                   f"parsing {val!r}: invalid syntax") from None
            cpu[k] = v
    for flag, k in (("memory", "limit"), ("memory-swap", "swap"),
                    ("memory-reservation", "reservation")):
        val = o[flag.replace("-", "_")]
        if val:
            mem[k] = -1 if val == "-1" else ram_in_bytes(flag, val)
    if o["pids_limit"]:
        r["pids"] = {"limit": o["pids_limit"]}
    if o["l3_cache_schema"] or o["mem_bw_schema"]:
        raise CommandError("Intel RDT is not supported by kago")
    return r


def ram_in_bytes(flag, s):
    """docker/go-units RAMInBytes: ``512``, ``100m``, ``1.5GiB`` (1024-based)."""
    import re
    m = re.fullmatch(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?", s)
    if not m:
        raise CommandError(f"invalid value for {flag}: invalid size: '{s}'")
    mult = 1024 ** " kmgtp".index((m.group(2) or " ").lower())
    return int(float(m.group(1)) * mult)


COMMANDS = {
    "checkpoint": cmd_checkpoint,
    "create": cmd_create,
    "delete": cmd_delete,
    "events": cmd_events,
    "exec": cmd_exec,
    "kill": cmd_kill,
    "list": cmd_list,
    "pause": cmd_pause,
    "ps": cmd_ps,
    "restore": cmd_restore,
    "resume": cmd_resume,
    "run": cmd_run,
    "spec": cmd_spec,
    "start": cmd_start,
    "state": cmd_state,
    "update": cmd_update,
    "features": cmd_features,
}


# --- errors -> runc's messages ------------------------------------------------

def error_message(command, exc):
    """The one-line message runc would print for ``exc`` raised by ``command``.

    containerd and CRI-O match some of these texts ("does not exist",
    "container not running"), so the library's state errors are reworded to
    runc's; other library errors keep their own text.  create/run failures are
    prefixed ``kago create failed: `` and exec failures ``exec failed: `` as runc
    does (runc's exec also exits 255 then, see :func:`kago.cli.execute`).
    """
    from kago import errors as E
    if isinstance(exc, CommandError):
        # runc's exec reports its own argument checks as exec failures too
        return f"exec failed: {exc}" if command == "exec" else str(exc)
    if isinstance(exc, E.ContainerNotFound):
        msg = "container does not exist"
    elif isinstance(exc, E.ContainerExists):
        msg = "container with given ID already exists"
    elif isinstance(exc, E.InvalidState):
        msg = _invalid_state(command, exc)
    elif isinstance(exc, E.KagoError):
        msg = str(exc) or type(exc).__name__
    elif isinstance(exc, OSError):
        msg = os_error_text(exc)
    else:
        text = str(exc)
        msg = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if command in ("create", "run"):
        msg = f"{PROG} {command} failed: {msg}"
    elif command == "exec":
        msg = f"exec failed: {msg}"
    return msg


def _invalid_state(command, exc):
    status = getattr(exc, "status", "") or ""
    if command == "start":
        if status == "stopped":
            return "cannot start a container that has stopped"
        if status == "running":
            return "cannot start an already running container"
        return f"cannot start a container in the {status} state"
    if command == "delete":
        return f"cannot delete container {getattr(exc, 'id', '')} that is not stopped: {status}"
    if command == "resume":
        return "container not paused"
    if command in ("kill", "pause", "exec", "ps", "events", "update", "checkpoint"):
        return "container not running"
    return str(exc)


def os_error_text(exc):
    """An OSError the way Go prints a PathError: ``open /x: no such file or directory``."""
    from kago import _os as os
    why = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    why = why[:1].lower() + why[1:]
    if exc.filename is not None:
        return f"{exc.filename}: {why}"
    return why
