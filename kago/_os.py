"""``os`` for the hot verbs, without importing ``os``.

Under ``-IS`` nothing imports ``os`` at start-up, and ``import os`` costs
1.2-1.7 ms here (os, _collections_abc, posixpath, genericpath, stat: a tenth
of a whole ``kago state``).  The modules on the hot path (``state``,
``start``, ``kill``: container.container, container.state, container.start,
container.kill, container.delete, kago.cgroups and its fs/v1/v2/freezer
modules, kago.pidfd, kago.cli) use this instead::

    from kago import _os as os

It has every public function and constant of ``posix`` (which ``os``
re-exports: the same objects), ``_exit``, and the few ``os.path`` functions
those modules call, written as posixpath's.  ``create``, ``run`` and ``exec``
(their whole fork chain: rootfs, init, attrs, capabilities, seccomp, ...) use it
too, so no kago call imports ``os`` unless it takes a rare path: anything not
defined here (``os.environ``, ``os.walk``, ``os.path.expanduser``, ...) is
looked up in the real ``os``/``posixpath``, imported on first use.  Read the
environment with :func:`getenv` (``posix.environ`` has bytes keys).
"""

from posix import *  # noqa: F401,F403
from posix import _exit, fspath, getcwd, stat  # noqa: F401

try:
    from posix import _path_normpath
except ImportError:                          # (not on every CPython)
    def _path_normpath(p):
        from posixpath import normpath
        return normpath(p)

_environb = environ  # noqa: F821  (posix's: bytes keys and values)
del environ  # noqa: F821  os.environ (str) comes from the fallback below

SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2


def __getattr__(name):
    """Anything else: the real ``os`` (imported now, once)."""
    import os
    return getattr(os, name)


def getenv(key, default=None):
    """``os.getenv`` for str keys, from the environment kago started with."""
    v = _environb.get(key.encode())
    return default if v is None else v.decode("utf-8", "surrogateescape")


def makedirs(name, mode=0o777, exist_ok=False):
    """``os.makedirs`` (str paths)."""
    head, tail = path.split(name)
    if not tail:
        head, tail = path.split(head)
    if head and tail and not path.exists(head):
        makedirs(head, mode, exist_ok=True)
    try:
        mkdir(name, mode)  # noqa: F405
    except FileExistsError:
        if not exist_ok or not path.isdir(name):
            raise


class _Path:
    """posixpath's join, exists, isdir, isabs, split, basename, dirname,
    normpath, abspath, realpath (str paths); anything else is posixpath's."""

    def __getattr__(self, name):
        import posixpath             # imports os: not on a common path
        return getattr(posixpath, name)

    @staticmethod
    def isabs(p):
        return fspath(p).startswith("/")

    @staticmethod
    def split(p):
        p = fspath(p)
        i = p.rfind("/") + 1
        head, tail = p[:i], p[i:]
        if head and head != "/" * len(head):
            head = head.rstrip("/")
        return head, tail

    @staticmethod
    def relpath(p, start=None):
        """posixpath's; a path under ``start`` (both absolute) without it."""
        p = fspath(p)
        if start is not None and p.startswith("/") and fspath(start).startswith("/"):
            a, b = _path_normpath(p), _path_normpath(fspath(start))
            if not (a.startswith("//") or b.startswith("//")):   # (posix's "//")
                if a == b:
                    return "."
                if b == "/":
                    return a[1:]
                if a.startswith(b + "/"):
                    return a[len(b) + 1:]
        import posixpath
        return posixpath.relpath(p, start)

    @staticmethod
    def realpath(p):
        """The path with every symlink resolved, as the kernel resolves it
        (the link of an O_PATH fd); posixpath's for a path that does not
        exist (its missing tail is kept as written) or is given as bytes."""
        try:
            fd = -1 if isinstance(p, bytes) else open(p, O_PATH | O_CLOEXEC)  # noqa: F405
        except (OSError, ValueError):
            fd = -1
        if fd >= 0:
            try:
                real = readlink(f"/proc/self/fd/{fd}")  # noqa: F405
            except OSError:
                real = ""
            finally:
                close(fd)  # noqa: F405
            if real.startswith("/") and not real.endswith(" (deleted)"):
                return real
        import posixpath
        return posixpath.realpath(p)

    @staticmethod
    def join(a, *p):
        a = fspath(a)
        out = a
        for b in map(fspath, p):
            if b.startswith("/"):
                out = b
            elif not out or out.endswith("/"):
                out += b
            else:
                out += "/" + b
        return out

    @staticmethod
    def exists(p):
        try:
            stat(p)
        except (OSError, ValueError):
            return False
        return True

    @staticmethod
    def isdir(p):
        try:
            st = stat(p)
        except (OSError, ValueError):
            return False
        return (st.st_mode & 0o170000) == 0o040000

    @staticmethod
    def basename(p):
        p = fspath(p)
        return p[p.rfind("/") + 1:]

    @staticmethod
    def dirname(p):
        p = fspath(p)
        head = p[:p.rfind("/") + 1]
        if head and head != "/" * len(head):
            head = head.rstrip("/")
        return head

    @staticmethod
    def normpath(p):
        return _path_normpath(fspath(p)) or "."

    @staticmethod
    def abspath(p):
        p = fspath(p)
        if not p.startswith("/"):
            cwd = getcwd()
            p = cwd + p if cwd.endswith("/") else cwd + "/" + p
        return _path_normpath(p) or "."


path = _Path()
