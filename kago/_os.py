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
those modules call, written as posixpath's.  ``environ`` is left out
(``posix.environ`` has bytes keys).  A module that needs more imports ``os``.
"""

from posix import *  # noqa: F401,F403
from posix import _exit, fspath, getcwd, stat  # noqa: F401

try:
    from posix import _path_normpath
except ImportError:                          # (not on every CPython)
    def _path_normpath(p):
        from posixpath import normpath
        return normpath(p)

del environ  # noqa: F821  bytes keys: use os.environ


class path:
    """posixpath's join, exists, isdir, basename, dirname, normpath, abspath
    (str paths); relpath imports posixpath."""

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
    def relpath(p, start=None):
        import posixpath             # imports os: not on a hot path
        return posixpath.relpath(p, start)

    @staticmethod
    def abspath(p):
        p = fspath(p)
        if not p.startswith("/"):
            cwd = getcwd()
            p = cwd + p if cwd.endswith("/") else cwd + "/" + p
        return _path_normpath(p) or "."
