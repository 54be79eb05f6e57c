"""What runc writes, the way Go writes it: encoding/json and text/tabwriter.

``kago state`` must print byte-for-byte what ``runc state`` prints
(``json.MarshalIndent(v, "", "  ")``, no trailing newline), and ``kago list``
runc's tabwriter table; the stdlib ``json`` module differs (``<`` is escaped
by Go, ``\\b`` is not, non-ASCII is kept) and costs ``re`` to import.
"""

from kago._json import json_string


def dumps(value, indent=None):
    """Go's json.Marshal (``indent=None``) or json.MarshalIndent(v, "", indent).

    Dicts keep their order (Go structs have a fixed order; pass a dict built
    in that order).
    """
    out = []
    _encode(value, indent, "", out)
    return "".join(out)


def _encode(v, indent, cur, out):
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(json_string(v))
    elif isinstance(v, int):
        out.append(str(int(v)))
    elif isinstance(v, float):
        out.append(_float(v))
    elif isinstance(v, dict):
        if not v:
            out.append("{}")
            return
        out.append("{")
        inner = cur + indent if indent is not None else None
        first = True
        for k, item in v.items():
            if not first:
                out.append(",")
            first = False
            if indent is not None:
                out.append("\n" + inner)
            out.append(json_string(str(k)))
            out.append(": " if indent is not None else ":")
            _encode(item, indent, inner, out)
        if indent is not None:
            out.append("\n" + cur)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        if not v:
            out.append("[]")
            return
        out.append("[")
        inner = cur + indent if indent is not None else None
        for i, item in enumerate(v):
            if i:
                out.append(",")
            if indent is not None:
                out.append("\n" + inner)
            _encode(item, indent, inner, out)
        if indent is not None:
            out.append("\n" + cur)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(v).__name__} as JSON")


def _float(f):
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError(f"unsupported float value: {f}")
    if f.is_integer() and abs(f) < 1e21:
        return str(int(f))
    r = repr(f)
    if "e" in r:                    # Go: 1e-07, 1e+21
        mant, exp = r.split("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").lstrip("0") or "0"
        r = f"{mant}e{sign}{digits.zfill(2)}"
    return r


def tabwrite(text, minwidth=1, padding=2):
    """Go's text/tabwriter with padchar ' ' and no flags.

    Cells are tab-terminated; a column block is a run of consecutive lines
    that all have a cell in that column; each cell is padded to the block's
    widest cell + ``padding`` (at least ``minwidth``).  The last cell of a
    line is written as is.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    widths = [[] for _ in lines]

    def fmt(line0, line1, col):
        this = line0
        while this < line1:
            if col >= len(lines[this]) - 1:
                this += 1
                continue
            start = this
            width = minwidth
            while this < line1 and col < len(lines[this]) - 1:
                width = max(width, len(lines[this][col]) + padding)
                this += 1
            for k in range(start, this):
                widths[k].append(width)
            fmt(start, this, col + 1)

    fmt(0, len(lines), 0)
    return "\n".join("".join(c.ljust(w) for c, w in zip(cells, ws)) + cells[-1]
                     for cells, ws in zip(lines, widths))
