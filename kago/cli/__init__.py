"""The ``kago`` command: a drop-in for runc's command line.

    main(argv=None)      run a command line and exit with its status
    run(argv=None)       the same, returning the exit status
    parse(argv=None)     parse only (no side effects): an Invocation

Layout: ``flags`` (the runc/urfave grammar and the tables of commands and
flags), ``commands`` (one function per command, reaching the library through
``commands.lib``), ``output`` (Go's JSON and tabwriter), ``helptext`` (help
screens, imported only for help and usage errors), ``kago.log`` (logrus-shaped
log lines).

What happens, in runc's order: global flags are parsed (an error there is
reported before logging is set up); ``--help``/``--version``; then runc's
``Before``: ``--root`` is made absolute and logging configured; then the
command's flags and arguments are checked and the command runs.  Every
failure is logged as an error record (to ``--log`` if given, where
containerd/conmon read the last one) and, when the log is a file, also printed
bare to stderr; the exit status is 1 (3 for an unknown command).
"""

import sys


def parse(argv=None):
    """Parse ``argv`` (without the program name); see :func:`kago.cli.flags.parse`."""
    from kago.cli.flags import parse as _parse
    return _parse(argv)


def main(argv=None):
    """Entry point of the ``kago`` executable: never returns."""
    import gc
    # a short-lived process makes no garbage cycles worth collecting, and a
    # collection in a forked child touches every object: copy-on-write faults
    # on the whole heap of main, init and exec'd processes
    gc.disable()
    code = run(argv)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    if argv is None:
        # the command line: skip the interpreter's teardown (module cleanup,
        # GC), a few ms of every call; all output is flushed and every file
        # kago wrote was closed (or fsync'd) by the code that wrote it
        from kago import _os as os   # (importing os costs ~1.5 ms)
        os._exit(0 if code is None else code if isinstance(code, int) else 1)
    raise SystemExit(code)


def run(argv=None):
    """Run one kago command line and return its exit status."""
    from kago.cli import flags
    try:
        inv = flags.parse(argv)
    except flags.UsageError as e:
        return _usage_error(e)
    except KeyboardInterrupt:
        return 130
    if inv.action == "version":
        import kago
        _stdout(f"{flags.PROG} version {kago.__version__}\nspec: {kago.OCI_VERSION}\n")
        return 0
    if inv.action == "help" and inv.command is None:
        from kago.cli.helptext import app_help
        _stdout(app_help())
        return 0
    snapped = False
    if inv.command in ("create", "run", "exec") and inv.action != "help":
        from kago.process import fds
        if inv.opts.get("preserve_fds") or (inv.command != "exec" and fds.listen_fds()):
            fds.snapshot()   # the caller's fds, before kago opens anything of its own
            snapped = True
        from kago.cgroups.fs import prewarm_attach
        prewarm_attach()     # the kernel's wait for the first cgroup attach, now
    if argv is None and inv.command in ("create", "run", "exec") and inv.action != "help":
        # only for the real command line: an in-process caller (tests, a
        # Python program calling run([...])) must not be re-exec'd
        # CVE-2019-5736: only from a read-only interpreter (may re-exec us)
        from kago.security.exe import ensure_protected
        ensure_protected()
    try:
        err = _before(inv)
        if err:
            return err
        if inv.action == "help":
            from kago.cli.helptext import command_help
            _stdout(command_help(inv.command))
            return 0
        return execute(inv)
    finally:
        if snapped:
            fds.forget()   # the snapshot was this command's, never a later one's


def execute(inv):
    """Run a parsed command (logging already configured); its exit status."""
    from kago.cli import commands
    try:
        return commands.COMMANDS[inv.command](inv) or 0
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except BaseException as e:
        from kago import log
        if log.debug_enabled():
            import traceback
            traceback.print_exc()
        fatal(commands.error_message(inv.command, e))
        return 255 if inv.command == "exec" else 1   # runc's exec: fatalWithCode(.., 255)


def fatal(msg):
    """runc's fatal(): log ``msg`` as an error; print it too if the log is a file."""
    from kago import log
    log.error(msg)
    if not log.to_stderr():
        _stderr(msg + "\n")


def _before(inv):
    """runc's ``Before``: --root made absolute, logging configured.  0 or 1."""
    g = inv.globals
    if "root" in inv.explicit:
        from kago import _os as os   # (importing os costs ~1.5 ms)
        root = os.path.abspath(g["root"])
        if root == "/":
            from kago import log
            log.configure(None, "text", g["debug"])
            log.error("Option --root argument should not be set to /")
            return 1
        g["root"] = root
    elif inv.command not in _NO_STATE and inv.action != "help":
        err = _default_root(g)
        if err:
            return err
    if not g["log"] and not g["debug"] and g["log_format"] in ("text", "") \
            and "kago.log" not in sys.modules:
        # kago.log's defaults (text on stderr, info) and no earlier run() in
        # this process configured it: nothing imported until a record is written
        return 0
    from kago import log
    log.configure(None, "text", g["debug"])
    try:
        log.configure(g["log"] or None, g["log_format"], g["debug"])
    except ValueError as e:
        log.error(str(e))
        return 1
    except OSError as e:
        from kago.cli.commands import os_error_text
        log.configure(None, g["log_format"], g["debug"])
        log.error(f"open {os_error_text(e)}")
        return 1
    return 0


# commands that never touch the state root
_NO_STATE = (None, "spec", "features", "help", "h")


def _default_root(g):
    """No ``--root``: runc's default.  ``$XDG_RUNTIME_DIR/kago`` (made 0700 and
    sticky, as runc does) for a non-root caller and for root in a user
    namespace (:func:`kago.userns.honor_xdg`), else /run/kago.  A non-root
    caller without ``$XDG_RUNTIME_DIR`` gets an error naming it (runc would
    fail on /run/runc's permissions instead).  0 or 1."""
    from kago import _os as os
    xdg = os.getenv("XDG_RUNTIME_DIR") or ""
    if os.geteuid() == 0 and not xdg:
        return 0                      # the common case: nothing to read
    from kago.userns import honor_xdg
    if not honor_xdg():
        return 0
    from kago import log
    if not xdg:
        if os.geteuid() == 0:
            return 0
        log.configure(None, "text", g["debug"])
        log.error("$XDG_RUNTIME_DIR is not set: a non-root user's container state "
                  "goes in $XDG_RUNTIME_DIR/kago; set XDG_RUNTIME_DIR or use --root")
        return 1
    root = os.path.abspath(os.path.join(xdg, "kago"))
    try:
        os.makedirs(root, 0o700, exist_ok=True)
    except OSError as e:
        _stderr("the path in $XDG_RUNTIME_DIR must be writable by the user\n")
        from kago.cli.commands import os_error_text
        log.configure(None, "text", g["debug"])
        log.error(f"mkdir {os_error_text(e)}")
        return 1
    try:
        os.chmod(root, 0o1700)
    except OSError as e:
        _stderr("you should check permission of the path in $XDG_RUNTIME_DIR\n")
        from kago.cli.commands import os_error_text
        log.configure(None, "text", g["debug"])
        log.error(f"chmod {os_error_text(e)}")
        return 1
    g["root"] = root
    return 0


def _usage_error(e):
    """Report a UsageError the way urfave/cli + runc do."""
    from kago import log
    from kago.cli import helptext
    if e.stage == "global":
        log.configure()                     # not set up yet: text to stderr
        _stdout(f"Incorrect Usage. {e.message}\n\n" + helptext.app_help())
        log.error(e.message)
        return e.exit_code
    err = _before(e.invocation)
    if err:
        return err
    if e.stage == "topic":
        # urfave writes "No help topic for 'x'\n" through runc's FatalWriter
        log.error(e.message + "\n")
        if not log.to_stderr():
            _stderr(e.message + "\n")
        return e.exit_code
    if e.stage == "command":
        _stdout(f"Incorrect Usage: {e.message}\n\n" + helptext.command_help(e.command))
    else:
        _stdout("Incorrect Usage.\n\n" + helptext.command_help(e.command))
    fatal(e.message)
    return e.exit_code


def _stdout(text):
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def _stderr(text):
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
