"""JSON without the ``json`` package.

``import json`` pulls in re and enum: about 10 ms of start-up on this class of
machine, more than a whole ``kago state`` may cost.  The C accelerator
``_json`` that json itself uses is cheap to import; this module drives it
directly.  ``loads`` gives what ``json.loads`` gives, errors included
(``JSONDecodeError`` with the same msg, pos, lineno and colno), except that,
as Go's encoding/json (runc) does, it refuses ``NaN``/``Infinity`` and a UTF-8
byte-order mark in bytes (json decodes bytes with utf-8-sig).  ``dumps`` gives
what ``json.dumps(obj, ensure_ascii=False, allow_nan=False)`` gives, errors
included (no check for circular references: kago dumps none).
tests/unit/test_json.py checks both against ``json``.
"""

import _json


class JSONDecodeError(ValueError):
    def __init__(self, msg, doc, pos):
        lineno = doc.count("\n", 0, pos) + 1
        colno = pos - doc.rfind("\n", 0, pos)
        super().__init__(f"{msg}: line {lineno} column {colno} (char {pos})")
        self.msg, self.doc, self.pos, self.lineno, self.colno = msg, doc, pos, lineno, colno


def _bad_constant(name):
    raise ValueError(f"invalid constant {name}")


class _Ctx:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_bad_constant)
    memo = None


_scanner = _json.make_scanner(_Ctx())
_WS = " \t\n\r"


def loads(s):
    if isinstance(s, (bytes, bytearray)):
        s = s.decode("utf-8")
    if s[:1] == "\ufeff":
        raise JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", s, 0)
    n = len(s)
    i = 0
    while i < n and s[i] in _WS:
        i += 1
    try:
        obj, end = _scanner(s, i)
    except StopIteration as e:
        raise JSONDecodeError("Expecting value", s, e.value) from None
    except _json_error() as e:  # the C scanner raises json.JSONDecodeError lazily
        raise JSONDecodeError(getattr(e, "msg", str(e)), s, getattr(e, "pos", 0)) from None
    except SystemError:
        # _json looks json.decoder up in sys.modules (it never imports it) to
        # raise JSONDecodeError; when absent it fails with a bare SystemError.
        # Only on this error path: import it and scan again for the real error.
        import sys
        if "json.decoder" in sys.modules:
            raise
        import json.decoder  # noqa: F401
        return loads(s)
    while end < n and s[end] in _WS:
        end += 1
    if end != n:
        raise JSONDecodeError("Extra data", s, end)
    return obj


def _json_error():
    # _json raises json.decoder.JSONDecodeError (it imports json.decoder
    # only when it has an error to raise); catch ValueError, its base
    return ValueError


def _default(o):
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


_enc_str = _json.encode_basestring
# (markers, default, encoder, indent, key_separator, item_separator, sort_keys,
#  skipkeys, allow_nan)
_c_encoder = _json.make_encoder(None, _default, _enc_str, None, ":", ",", False, False, False)
_c_encoder_spaced = _json.make_encoder(None, _default, _enc_str, None, ": ", ", ",
                                       False, False, False)


def _float(o):
    if o != o or o in (float("inf"), float("-inf")):
        raise ValueError(f"Out of range float values are not JSON compliant: {o!r}")
    return float.__repr__(o)


def dumps(obj, indent=None, separators=None, ensure_ascii=False):
    if indent is None:
        enc = _c_encoder if separators == (",", ":") or separators is None else _c_encoder_spaced
        if separators is None:
            enc = _c_encoder_spaced
        return "".join(enc(obj, 0))
    out = []
    _pretty(obj, out, " " * indent if isinstance(indent, int) else indent, 0)
    return "".join(out)


def _key(k):
    """A dict key as json writes it."""
    if isinstance(k, str):
        return k
    if k is True or k is False or k is None:
        return {True: "true", False: "false", None: "null"}[k]
    if isinstance(k, int):
        return int.__repr__(k)
    if isinstance(k, float):
        return _float(k)
    raise TypeError(f"keys must be str, int, float, bool or None, not {k.__class__.__name__}")


def _pretty(o, out, ind, level):
    if isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        pad = "\n" + ind * (level + 1)
        out.append("{")
        first = True
        for k, v in o.items():
            out.append(pad if first else "," + pad)
            first = False
            out.append(_enc_str(_key(k)))
            out.append(": ")
            _pretty(v, out, ind, level + 1)
        out.append("\n" + ind * level + "}")
    elif isinstance(o, (list, tuple)):
        if not o:
            out.append("[]")
            return
        pad = "\n" + ind * (level + 1)
        out.append("[")
        first = True
        for v in o:
            out.append(pad if first else "," + pad)
            first = False
            _pretty(v, out, ind, level + 1)
        out.append("\n" + ind * level + "]")
    elif isinstance(o, str):
        out.append(_enc_str(o))
    elif o is True:
        out.append("true")
    elif o is False:
        out.append("false")
    elif o is None:
        out.append("null")
    elif isinstance(o, int):
        out.append(int.__repr__(o))
    elif isinstance(o, float):
        out.append(_float(o))
    else:
        _default(o)


# --- Go's encoding/json strings (log records, kago.cli.output) --------------

_JSON_ESCAPES = None


def json_string(s):
    """A JSON string exactly as Go 1.19's encoding/json writes it.

    Only ``\\n \\r \\t`` get short escapes, other control characters and the
    HTML characters ``< > &`` (and U+2028/U+2029) become ``\\u00XX``; other
    non-ASCII text stays as is; undecodable bytes become ``\\ufffd``.
    """
    global _JSON_ESCAPES
    t = _JSON_ESCAPES
    if t is None:
        t = {i: f"\\u{i:04x}" for i in range(0x20)}
        for c in "<>&\u2028\u2029":
            t[ord(c)] = f"\\u{ord(c):04x}"
        t[0x0A] = "\\n"
        t[0x0D] = "\\r"
        t[0x09] = "\\t"
        t[0x22] = '\\"'
        t[0x5C] = "\\\\"
        _JSON_ESCAPES = t
    s = s.translate(t)
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            s = "".join("\\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)
    return '"' + s + '"'
