"""The workload file format: every bad line is named by file, line and field; good data round-trips."""
from __future__ import annotations

import json

import pytest

from cfopt.errors import WorkloadError
from hypothesis import given, settings, strategies as st

from cfopt.workload import (MAX_DEPTH, MAX_PROMPT_CHARS, MAX_T_S, Request, dumps, iter_requests, load,
                            loads, strip_intent, write_jsonl)

GOOD = '{"t": 0.5, "type": "text", "prompt": "Write a haiku about tea"}'
GOOD2 = '{"t": 1.0, "type": "image", "prompt": "A red bicycle", "quality": "low"}'


def write_lines(tmp_path, *lines: str | bytes, name: str = "w.jsonl"):
    path = tmp_path / name
    data = b"".join((ln if isinstance(ln, bytes) else ln.encode("utf-8")) + b"\n" for ln in lines)
    path.write_bytes(data)
    return path


def obj(**fields) -> str:
    base = {"t": 2.0, "type": "text", "prompt": "Summarize the meeting notes"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...})


BAD_LINES = [
    # (line content, field named, words the message must contain)
    ("{not json", None, "bad JSON"),
    ('{"t": 1, "type": "text", "prompt": "x"', None, "bad JSON"),
    ("[1, 2, 3]", None, "JSON object"),
    ('"just a string"', None, "JSON object"),
    (obj(t=...), "t", "missing"),
    (obj(type=...), "type", "missing"),
    (obj(prompt=...), "prompt", "missing"),
    (obj(t="3.0"), "t", "number"),
    (obj(t=True), "t", "number"),
    (obj(t=-1.0), "t", ">= 0"),
    ('{"t": NaN, "type": "text", "prompt": "x"}', "t", "NaN"),
    ('{"t": -Infinity, "type": "text", "prompt": "x"}', "t", "Infinity"),
    ('{"t": 1e400, "type": "text", "prompt": "x"}', "t", "overflow"),
    ('{"t": 1, "type": "text", "prompt": "x", "score": [1, NaN]}', "score", "NaN"),
    (obj(type="sms"), "type", "one of"),
    (obj(type=3), "type", "one of"),
    (obj(quality="premium"), "quality", "one of"),
    (obj(priority="urgent"), "priority", "one of"),
    (obj(prompt=""), "prompt", "empty"),
    (obj(prompt="  \n\t "), "prompt", "blank"),
    (obj(prompt=42), "prompt", "string"),
    (obj(prompt=None), "prompt", "string"),
    (obj(prompt="x" * (MAX_PROMPT_CHARS + 1)), "prompt", "limit"),
    (obj(max_tokens=0), "max_tokens", "positive"),
    (obj(max_tokens=-5), "max_tokens", "positive"),
    (obj(max_tokens=True), "max_tokens", "integer"),
    (obj(max_tokens=12.0), "max_tokens", "integer"),
    (obj(max_tokens="100"), "max_tokens", "integer"),
    (obj(user=7), "user", "string"),
    (obj(id=["a"]), "id", "string"),
    (obj(task=False), "task", "string"),
    (obj(intent={"x": 1}), "intent", "string"),
    # issue 17: spans, depth and lone surrogates
    (obj(t=1e10), "t", "MAX_T_S"),
    (obj(t=1e13), "t", "MAX_T_S"),
    (obj(t=1e308), "t", "MAX_T_S"),
    (obj(t=MAX_T_S + 0.001), "t", "a year"),
    ('{"t": 0, "type": "text", "prompt": "bad \\ud800 here"}', "prompt", "lone surrogate"),
    ('{"t": 0, "type": "text", "prompt": "x", "user": "\\udfff"}', "user", "lone surrogate"),
    ('{"t": 0, "type": "text", "prompt": "x", "id": "a\\ud83d"}', "id", "lone surrogate"),
    ('{"t": 0, "type": "text", "prompt": "x", "meta": {"tags": ["ok", "\\udc00"]}}', "meta",
     "meta.tags.1"),
    ('{"t": 0, "type": "text", "prompt": "x", "meta": {"\\ud800": 1}}', "meta", "lone surrogate"),
]


@pytest.mark.parametrize("line,field,words", BAD_LINES, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD_LINES)])
def test_each_bad_line_names_file_line_and_field(tmp_path, line, field, words):
    path = write_lines(tmp_path, GOOD, GOOD2, line)
    with pytest.raises(WorkloadError) as info:
        load(path)
    e = info.value
    assert (e.path, e.line, e.field) == (str(path), 3, field)
    message = str(e)
    assert message.startswith(f"{path}:3: "), message
    assert words in message, message
    if field:
        assert message.endswith(f"(field {field!r})")


def test_invalid_utf8_is_named_with_its_field(tmp_path):
    path = write_lines(tmp_path, GOOD, b'{"t": 1, "type": "text", "prompt": "caf\xe9 au lait"}')
    with pytest.raises(WorkloadError, match=r"w\.jsonl:2: invalid UTF-8 at byte 39 of the line "
                                            r"\(field 'prompt'\)") as info:
        load(path)
    assert (info.value.line, info.value.field) == (2, "prompt")
    path = write_lines(tmp_path, GOOD, b'{"t": 1, "type": "text", "prompt": "ok", "\xff": 1}',
                       name="key.jsonl")
    with pytest.raises(WorkloadError, match="invalid UTF-8") as info:
        load(path)
    assert info.value.field == "\udcff"  # the key itself is the bad part
    path = write_lines(tmp_path, b'{"t": 1, "prompt": "\xc3', name="cut.jsonl")
    with pytest.raises(WorkloadError, match=r"cut\.jsonl:1: invalid UTF-8") as info:
        load(path)
    assert info.value.field is None  # nothing parses: no field to name


def test_decreasing_t_is_named(tmp_path):
    path = write_lines(tmp_path, obj(t=5.0), obj(t=5.0), obj(t=4.999))
    with pytest.raises(WorkloadError, match=r"w\.jsonl:3: t went backwards: 4\.999 after 5\.0") as info:
        load(path)
    assert info.value.field == "t"


def test_ten_megabyte_prompt_is_rejected_not_loaded(tmp_path):
    path = write_lines(tmp_path, GOOD, obj(prompt="a" * 10_000_000))
    with pytest.raises(WorkloadError, match=r":2: prompt is 10,000,000 characters; the limit is 100,000") as info:
        load(path)
    assert info.value.field == "prompt"


def test_overlong_line_is_refused_unread(tmp_path, monkeypatch):
    import cfopt.workload._format as fmt
    monkeypatch.setattr(fmt, "MAX_LINE_BYTES", 1000)
    path = write_lines(tmp_path, GOOD, obj(prompt="b" * 5000))
    with pytest.raises(WorkloadError, match=r":2: line is longer than 1,000 bytes"):
        load(path)


def test_duplicate_id_is_named(tmp_path):
    path = write_lines(tmp_path, obj(id="r1", t=0), obj(id="r2", t=1), obj(id="r1", t=2))
    with pytest.raises(WorkloadError, match=r":3: duplicate id 'r1' \(first on line 1\)"):
        load(path)


def test_error_after_good_lines_raises_and_returns_nothing(tmp_path):
    lines = [obj(t=float(i), prompt=f"request {i}") for i in range(50)] + [obj(type="fax")]
    path = write_lines(tmp_path, *lines)
    with pytest.raises(WorkloadError) as info:
        load(path)
    assert info.value.line == 51
    # the iterator form hands out the good lines first, then fails at the bad one
    seen = []
    with pytest.raises(WorkloadError):
        for r in iter_requests(path):
            seen.append(r)
    assert len(seen) == 50


def test_blank_lines_are_skipped_and_counted(tmp_path):
    path = write_lines(tmp_path, GOOD, "", "   \t", GOOD2, "", obj(type="fax"))
    with pytest.raises(WorkloadError) as info:
        load(path)
    assert info.value.line == 6
    path = write_lines(tmp_path, GOOD, "", GOOD2, "", name="ok.jsonl")
    assert [r.type for r in load(path)] == ["text", "image"]


def test_byte_order_mark_on_first_line_is_accepted(tmp_path):
    path = write_lines(tmp_path, b"\xef\xbb\xbf" + GOOD.encode(), GOOD2)
    assert len(load(path)) == 2


def test_defaults_nulls_and_extra_fields(tmp_path):
    line = ('{"t": 3, "type": "photo", "prompt": "red barn", "user": null, "campaign": "q3",'
            ' "tags": ["a", "b"], "nested": {"k": 1}}')
    path = write_lines(tmp_path, line)
    (r,) = load(path)
    assert (r.t, r.quality, r.priority, r.user, r.max_tokens) == (3.0, "standard", "medium", None, None)
    assert isinstance(r.t, float)
    assert r.extra == {"campaign": "q3", "tags": ["a", "b"], "nested": {"k": 1}}
    out = tmp_path / "out.jsonl"
    write_jsonl([r], out)
    assert json.loads(out.read_text()) == {
        "t": 3.0, "type": "photo", "quality": "standard", "priority": "medium",
        "prompt": "red barn", "campaign": "q3", "nested": {"k": 1}, "tags": ["a", "b"]}
    assert load(out) == [r]


def test_round_trip_is_canonical_and_byte_stable(tmp_path):
    reqs = [Request(t=0, type="text", prompt="Héllo — «quoted» \"x\"\nline two", id="a",
                    user="u1", task="blog_post", quality="critical", priority="high",
                    max_tokens=300, intent="i1", extra={"z": 1, "a": [1.5, None]}),
            Request(t=0.25, type="video", prompt="A cat", id="b")]
    first, second = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    write_jsonl(reqs, first)
    write_jsonl(load(first), second)
    assert first.read_bytes() == second.read_bytes()
    data = first.read_bytes()
    assert data.endswith(b"\n") and b"\r" not in data and "Héllo".encode() in data
    assert data.splitlines()[0].startswith(b'{"id":"a","t":0.0,"user":"u1","type":"text"')
    assert data.splitlines()[0].endswith(b'"intent":"i1","a":[1.5,null],"z":1}')
    assert load(first) == reqs


def test_write_refuses_what_load_would_refuse(tmp_path):
    path = tmp_path / "w.jsonl"
    with pytest.raises(WorkloadError, match="t went backwards"):
        write_jsonl([Request(t=2, type="text", prompt="a"), Request(t=1, type="text", prompt="b")], path)
    with pytest.raises(WorkloadError, match="duplicate id"):
        write_jsonl([Request(t=1, type="text", prompt="a", id="x"),
                     Request(t=2, type="text", prompt="b", id="x")], path)
    assert not path.exists() and list(tmp_path.iterdir()) == []  # nothing half-written
    write_jsonl([Request(t=0, type="text", prompt="kept")], path)
    before = path.read_bytes()

    def broken():
        yield Request(t=0, type="text", prompt="new")
        raise RuntimeError("the generator failed half-way")
    with pytest.raises(RuntimeError):
        write_jsonl(broken(), path)
    assert path.read_bytes() == before  # a failed write never loses the file already there
    assert [p.name for p in tmp_path.iterdir()] == ["w.jsonl"]


def test_request_is_frozen_hashable_and_validates_in_code():
    r = Request(t=1, type="text", prompt="x", extra={"a": 1})
    with pytest.raises(AttributeError):
        r.t = 2.0  # type: ignore[misc]
    assert hash(r) == hash(Request(t=1.0, type="text", prompt="x", extra={"b": 2}))
    with pytest.raises(WorkloadError, match="max_tokens must be an integer") as info:
        Request(t=1, type="text", prompt="x", max_tokens=False)
    assert info.value.field == "max_tokens"
    with pytest.raises(WorkloadError, match="extra repeats a known field"):
        Request(t=1, type="text", prompt="x", extra={"prompt": "y"})


def test_repr_is_short_and_readable():
    r = Request(t=1, type="text", prompt="word " * 40, quality="low", id="r1")
    text = repr(r)
    assert text.startswith("Request(t=1.0, type='text', prompt='word word")
    assert "..." in text and "quality='low'" in text and "priority" not in text and len(text) < 150


def test_loads_dumps_and_strip_intent():
    r = loads('{"t": 1, "type": "analysis", "prompt": "Rate this", "intent": "rate:1"}')
    assert loads(dumps(r)) == r
    (clean,) = strip_intent([r])
    assert clean.intent is None and clean.prompt == r.prompt
    with pytest.raises(WorkloadError, match="invalid UTF-8|bad JSON"):
        loads("{")


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.jsonl")


# -- issue 17: depth, surrogates and span, with file:line ---------------------------------------
def test_a_line_nested_100000_deep_is_refused_unparsed_with_file_and_line(tmp_path):
    deep = '{"t": 0, "type": "text", "prompt": "x", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = write_lines(tmp_path, GOOD, deep)
    with pytest.raises(WorkloadError, match=rf"w.jsonl:2: JSON nested deeper than {MAX_DEPTH}") as e:
        load(path)
    assert e.value.line == 2 and e.value.path == str(path)


def test_nesting_up_to_the_limit_is_accepted_and_round_trips(tmp_path):
    nested: object = "leaf"
    for _ in range(MAX_DEPTH - 1):   # the line's own object is the first level
        nested = [nested]
    line = json.dumps({"t": 0, "type": "text", "prompt": "x", "deep": nested})
    assert loads(line).extra["deep"] == nested
    with pytest.raises(WorkloadError, match="nested deeper"):
        loads(json.dumps({"t": 0, "type": "text", "prompt": "x", "deep": [nested]}))


def test_t_at_the_documented_span_is_accepted_and_replays_fast(tmp_path):
    import time
    from cfopt.pipeline import Pipeline, PipelineConfig
    path = write_lines(tmp_path, obj(t=0.0, prompt="red bicycle", type="photo"),
                       obj(t=MAX_T_S, prompt="red bicycle", type="photo"))
    requests = load(path)
    t0 = time.perf_counter()
    run = Pipeline(PipelineConfig()).run(requests)
    took = time.perf_counter() - t0
    print(f"\nreplay of 2 requests a year apart (t = {MAX_T_S:,.0f} s): {took * 1000:.0f} ms")
    assert [o.source for o in run.outcomes] == ["provider", "provider"]  # the photo TTL passed


def test_t_1e308_ends_cfopt_report_at_once_with_file_and_line(tmp_path, capsys):
    from cfopt.cli import main
    path = write_lines(tmp_path, GOOD, obj(t=1e308))
    assert main(["report", "--workload", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: t is 1e+308 s" in err and "MAX_T_S" in err


_FIELDS = ("prompt", "id", "user", "task", "intent", "extra_field")


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(_FIELDS), text=st.text(min_size=1, max_size=20),
       surrogate=st.integers(0xD800, 0xDFFF), at=st.integers(0, 20))
def test_a_lone_surrogate_anywhere_is_refused_naming_the_field(field, text, surrogate, at):
    value = text[:at] + chr(surrogate) + text[at:]
    fields = {"t": 0, "type": "text", "prompt": "hello"}
    fields[field] = value if field != "prompt" else value + "x"
    line = json.dumps(fields)          # ensure_ascii: the surrogate travels as a \\uXXXX escape
    with pytest.raises(WorkloadError, match="lone surrogate") as e:
        loads(line)
    assert e.value.field == field


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1, max_size=40).filter(str.strip))
def test_any_real_text_including_astral_characters_round_trips(text):
    r = loads(json.dumps({"t": 0, "type": "text", "prompt": text, "note": text}))
    assert r.prompt == text and loads(dumps(r)) == r
