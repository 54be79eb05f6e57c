"""kago._json (json on the C accelerator _json, without the json package)
gives json's results on the same inputs, errors included; the two documented
differences (NaN/Infinity and a byte-order mark in bytes: refused, as Go's
encoding/json refuses them) are checked as such."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kago import _json

REPO = Path(__file__).resolve().parents[2]

DOCS = ['{}', '[]', '1', '-0', '1.5e3', '1e400', '123456789012345678901234567890', '"x"',
        ' {"a": [1, 2.5, true, false, null, "\\u00e9\\ud83d\\ude00", "\\ud800"]} \n',
        '{"a":1,"a":2}', '[' * 50 + ']' * 50, '"\\"\\\\\\/\\b\\f\\n\\r\\t"', '"é€😀"',
        b'{"a": "\xc3\xa9"}', bytearray(b'[1]'),
        # errors
        '', ' ', '{', '}', '[1,]', '{"a" 1}', '{"a":1,}', '{1:2}', "{'a':1}", '[1] x',
        '{"a":1}{"b":2}', '"\\x"', '"\\u12"', '"abc', 'nul', 'tru', '01', '1.', '-', '.5',
        '\n\n  {"a":\n tru}', '"\x01"', '"a\tb"', '\ufeff{}', '[1 2]', '{"a":[}', 'undefined']


def outcome(f, *a, **kw):
    try:
        return ("ok", f(*a, **kw))
    except ValueError as e:
        return ("error", type(e).__mro__[1] if type(e).__name__ == "JSONDecodeError"
                else type(e), str(e), getattr(e, "msg", None), getattr(e, "pos", None),
                getattr(e, "lineno", None), getattr(e, "colno", None))
    except TypeError as e:
        return ("error", TypeError, str(e))


@pytest.mark.parametrize("doc", DOCS, ids=[repr(d)[:30] for d in DOCS])
def test_loads_matches_json(doc):
    ours, theirs = outcome(_json.loads, doc), outcome(json.loads, doc)
    assert ours == theirs
    if ours[0] == "error":
        with pytest.raises(ValueError):
            _json.loads(doc)


def test_loads_decode_error_is_a_valueerror_with_positions():
    with pytest.raises(_json.JSONDecodeError) as e:
        _json.loads('{\n  "a": 1,\n  "b": ]\n}')
    assert isinstance(e.value, ValueError)
    assert (e.value.msg, e.value.lineno, e.value.colno) == ("Expecting value", 3, 8)
    with pytest.raises(UnicodeDecodeError):       # json too
        _json.loads(b'"\xff"')
    with pytest.raises(UnicodeDecodeError):
        json.loads(b'"\xff"')


@pytest.mark.parametrize("doc", ["NaN", "Infinity", "-Infinity", '[1, NaN]'])
def test_loads_refuses_what_go_refuses(doc):
    assert json.loads(doc) is not None                       # json accepts them
    with pytest.raises(_json.JSONDecodeError, match="invalid constant"):
        _json.loads(doc)


def test_loads_refuses_a_bom_in_bytes():
    assert json.loads(b'\xef\xbb\xbf{}') == {}               # json decodes with utf-8-sig
    with pytest.raises(_json.JSONDecodeError, match="Unexpected UTF-8 BOM"):
        _json.loads(b'\xef\xbb\xbf{}')


OBJS = [{}, [], (), 0, -1, 10 ** 30, 1.5, -0.0, 1e300, 1 / 3, True, False, None, "",
        "é\n\"<>&\u2028\x00\x1f😀", "\ud800",
        {"a": [1, 2.5, True, None, {"b": {}}, [[]]], "c": (1, "x")},
        {1: 2, False: 3, None: 4, 1.5: 5, "s": 6},
        # errors
        float("nan"), [float("inf")], {"x": float("-inf")}, {"x": object()}, [b"bytes"],
        {(1,): 2}, {"a": {1, 2}}]
KWARGS = [{}, {"indent": 1}, {"indent": 2}, {"indent": "\t"}, {"separators": (",", ":")}]


@pytest.mark.parametrize("kw", KWARGS, ids=[repr(k) for k in KWARGS])
@pytest.mark.parametrize("obj", OBJS, ids=[repr(o)[:30] for o in OBJS])
def test_dumps_matches_json(obj, kw):
    ours = outcome(_json.dumps, obj, **kw)
    theirs = outcome(json.dumps, obj, ensure_ascii=False, allow_nan=False, **kw)
    assert ours == theirs


def test_round_trip_of_a_real_config():
    cfg = json.loads((REPO / "bench" / "podman-config.json").read_text())
    assert _json.loads(_json.dumps(cfg)) == cfg
    assert _json.dumps(cfg, indent=1) == json.dumps(cfg, indent=1, ensure_ascii=False)
    assert _json.loads(json.dumps(cfg).encode()) == cfg


def test_importing_it_does_not_import_json():
    code = ("import sys\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "from kago import _json\n"
            "_json.loads(_json.dumps({'a': [1]}))\n"
            "print(' '.join(sorted(sys.modules)))\n")
    res = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    loaded = set(res.stdout.split())
    assert "_json" in loaded and not {"json", "json.decoder", "re", "enum"} & loaded


def test_errors_in_a_process_without_json_decoder():
    # _json raises json.decoder's error class and fails with SystemError when
    # json.decoder was never imported: kago._json must still say what is wrong
    code = ("import sys\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "from kago import _json\n"
            "try:\n"
            "    _json.loads('{\"a\": [1,}')\n"
            "except ValueError as e:\n"
            "    print(type(e).__name__, e.msg, e.pos, e.lineno, e.colno)\n")
    res = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    try:
        json.loads('{"a": [1,}')
    except json.JSONDecodeError as e:
        want = f"JSONDecodeError {e.msg} {e.pos} {e.lineno} {e.colno}"
    assert res.stdout.strip() == want
