"""ps: the container's processes, from its cgroup (runc's output formats)."""

import json

from kago.errors import KagoError


def ps(c, fmt="table", ps_args=None) -> str:
    """json: the pid array; table: the rows of ``ps ps_args`` (default -ef)
    whose PID is in the container's cgroup, under ps's header."""
    pids = c.processes()
    if fmt == "json":
        return json.dumps(pids)
    if fmt != "table":
        raise KagoError(f"invalid format option {fmt!r}")
    import subprocess
    args = list(ps_args) if ps_args else ["-ef"]
    try:
        out = subprocess.run(["ps"] + args, capture_output=True, text=True)
    except FileNotFoundError:
        raise KagoError("ps: command not found on the host") from None
    if out.returncode != 0:
        raise KagoError(f"ps {' '.join(args)}: {out.stderr.strip() or 'failed'}")
    lines = out.stdout.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    try:
        col = header.index("PID")
    except ValueError:
        raise KagoError("couldn't find PID field in ps output") from None
    want = set(pids)
    rows = [lines[0]]
    for line in lines[1:]:
        f = line.split()
        if len(f) > col and f[col].isdigit() and int(f[col]) in want:
            rows.append(line)
    return "\n".join(rows) + "\n"
