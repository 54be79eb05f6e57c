"""kago's logger: runc's log lines (logrus text and JSON formatters).

containerd, CRI-O and conmon run the runtime with ``--log FILE --log-format
json`` and show the ``msg`` of the *last* ``"level":"error"`` line of FILE as
the error, so every failure must end up there, one line per record::

    {"level":"error","msg":"container does not exist","time":"2026-11-28T11:30:00Z"}
    time="2026-11-28T11:30:00Z" level=error msg="container does not exist"

Both shapes are byte-for-byte what logrus (runc 1.1.5) writes: keys sorted in
JSON, Go's JSON string escaping (``<`` -> ``\\u003c``), Go's ``%q`` quoting in
text (values made only of ``[A-Za-z0-9-._/@^+]`` stay bare), RFC 3339 local
time with seconds.  On a terminal the text format is logrus' coloured one
(``ERRO[0000] message``).

Without ``--log`` records go to stderr (in the chosen format).  Like runc's
``fatal()``, a caller that fails calls :func:`error` and then, if
:func:`to_stderr` is false, also prints the bare message to stderr.

Cheap to import: ``sys`` and ``time`` only (``os`` when a file is opened).
The log file is opened ``O_APPEND`` so processes forked from kago (which
inherit the descriptor) can append whole lines to it too.
"""

import sys
import time

DEBUG = "debug"
INFO = "info"
WARNING = "warning"
ERROR = "error"

_RANK = {"panic": 0, "fatal": 1, ERROR: 2, WARNING: 3, INFO: 4, DEBUG: 5, "trace": 6}
_COLOR = {"panic": 31, "fatal": 31, ERROR: 31, WARNING: 33, INFO: 36, DEBUG: 37, "trace": 37}

_START = time.time()


class _Config:
    path = None      # the --log path, None for stderr
    fd = None        # the open --log file
    fmt = "text"
    level = _RANK[INFO]
    debug = False


_cfg = _Config()


def configure(path=None, fmt="text", debug=False):
    """Set where and how records are written (runc's ``configLogrus``).

    ``fmt`` is ``"text"`` (or ``""``) or ``"json"``; anything else raises
    ValueError("invalid log-format: X").  ``path`` is opened (created 0644,
    appended to) now, so an unusable path raises OSError here.
    """
    if fmt in ("", None):
        fmt = "text"
    if fmt not in ("text", "json"):
        raise ValueError(f"invalid log-format: {fmt}")
    fd = None
    if path:
        from kago import _os as os
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_SYNC | os.O_CLOEXEC,
                     0o644)
    close()
    _cfg.path = path or None
    _cfg.fd = fd
    _cfg.fmt = fmt
    _cfg.debug = bool(debug)
    _cfg.level = _RANK[DEBUG] if debug else _RANK[INFO]


def close():
    """Close the log file (if any) and go back to stderr."""
    if _cfg.fd is not None:
        from kago import _os as os
        try:
            os.close(_cfg.fd)
        except OSError:
            pass
    _cfg.fd = None
    _cfg.path = None


def to_stderr():
    """True when records go to stderr (no ``--log`` file)."""
    return _cfg.fd is None


def debug_enabled():
    return _cfg.debug


def debug(msg, **fields):
    log(DEBUG, msg, **fields)


def info(msg, **fields):
    log(INFO, msg, **fields)


def warning(msg, **fields):
    log(WARNING, msg, **fields)


def error(msg, **fields):
    log(ERROR, msg, **fields)


def log(level, msg, **fields):
    """Write one record if ``level`` is enabled.  Never raises."""
    if _RANK[level] > _cfg.level:
        return
    try:
        _write(format_record(level, str(msg), fields, time.time(), _cfg.fmt, _colored()))
    except Exception:       # logging must never turn into the failure itself
        pass


def _colored():
    if _cfg.fmt != "text":
        return False
    try:
        if _cfg.fd is not None:
            from kago import _os as os
            return os.isatty(_cfg.fd)
        return sys.stderr is not None and sys.stderr.isatty()
    except (OSError, ValueError):
        return False


def _write(line):
    data = line.encode("utf-8", "surrogateescape")
    if _cfg.fd is not None:
        from kago import _os as os
        os.write(_cfg.fd, data)
        return
    err = sys.stderr
    if err is None:
        return
    err.flush()
    buf = getattr(err, "buffer", None)
    if buf is not None:
        buf.write(data)
        buf.flush()
    else:
        err.write(line)
        err.flush()


# --- the logrus formatters ---------------------------------------------

def rfc3339(t):
    """Go's time.RFC3339 in local time: ``2026-11-28T11:30:00Z`` / ``...+01:00``."""
    lt = time.localtime(t)
    s = time.strftime("%Y-%m-%dT%H:%M:%S", lt)
    off = lt.tm_gmtoff or 0
    if off == 0:
        return s + "Z"
    sign = "+" if off > 0 else "-"
    off = abs(off)
    return f"{s}{sign}{off // 3600:02d}:{off % 3600 // 60:02d}"


def format_record(level, msg, fields, t, fmt="text", colored=False):
    """One log line (with its newline) as logrus would write it."""
    if fmt == "json":
        data = {k: v for k, v in fields.items()}
        data["level"] = level
        data["msg"] = msg
        data["time"] = rfc3339(t)
        body = ",".join(f"{json_string(k)}:{_json_value(data[k])}" for k in sorted(data))
        return "{" + body + "}\n"
    if colored:
        color = _COLOR[level]
        if msg.endswith("\n"):
            msg = msg[:-1]
        out = [f"\x1b[{color}m{level.upper()[:4]}\x1b[0m[{int(t - _START):04d}] {msg:<44} "]
        for k in sorted(fields):
            out.append(f" \x1b[{color}m{k}\x1b[0m={_text_value(fields[k])}")
        return "".join(out) + "\n"
    out = [f"time={_text_value(rfc3339(t))} level={_text_value(level)} msg={_text_value(msg)}"]
    for k in sorted(fields):
        out.append(f" {k}={_text_value(fields[k])}")
    return "".join(out) + "\n"


_BARE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")


def _text_value(v):
    s = v if isinstance(v, str) else _go_sprint(v)
    if all(c in _BARE for c in s):
        return s
    return go_quote(s)


def _go_sprint(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "<nil>"
    return str(v)


def _json_value(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    return json_string(v if isinstance(v, str) else str(v))


def go_quote(s):
    """Go's ``%q`` (strconv.Quote); bytes of invalid UTF-8 become ``\\xNN``."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif 0xDC80 <= o <= 0xDCFF:      # an undecodable byte (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch.isprintable() and not 0xD800 <= o <= 0xDFFF:
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def json_string(s):
    """A JSON string as Go's encoding/json writes it (:func:`kago._json.json_string`,
    imported only when a JSON record is written)."""
    from kago._json import json_string as js
    return js(s)
