"""`nnspec fmt`: one canonical layout for .nn files, in the manner of gofmt.

The layout is decided from the file's tokens and comments alone, never from
its old whitespace, so formatting is idempotent; only whitespace changes (and
a trailing comma before `)` or `]` is dropped), and the spec parsed from the
result is compared with the spec parsed from the input before anything is
returned. A file with errors (anything `nnspec check` reports) is refused
with those errors.

The layout:
- four spaces per `{` level; `{` ends its line and `}` stands on its own;
- one space around `->`, `=`, `+`, `-`, `*`, `/`, `//`, `%` and after `,`
  and `:`; none around a keyword argument's `=` (`dense(10, bias=false)`),
  inside brackets, after a unary minus, or before a call's `(` or a type's `[`;
- the `=` of a `train` block (any top-level block of `key = value` settings)
  lined up one space after its longest key;
- a statement longer than WIDTH broken after `->` or `,`, outermost brackets
  first, filling each line; continuation lines indented one level more;
- one blank line after each top-level `}`; elsewhere blank lines kept, at most
  one in a row, none just inside `{` or `}`;
- comments stay where they were: a comment on a line of its own stays on a
  line of its own, a comment after code stays after the same token (two
  spaces after the code, lined up with the comments of adjacent lines).
"""
from __future__ import annotations

import difflib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

WIDTH = 88
INDENT = "    "
KEYWORDS = frozenset({"model", "block", "train", "input", "output", "repeat"})   # at a line's start
CONTINUES = frozenset({"->", "{", ","})          # a newline after one of these does not end a statement
OPENERS, CLOSERS = frozenset("(["), frozenset(")]")

_TOKEN = re.compile(r"""
    (?P<nl>\r?\n)
  | (?P<ws>[ \t\f]+)
  | (?P<cont>\\[ \t\f]*\r?\n)
  | (?P<comment>\#[^\r\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>->|//|[-+*/%=:,()\[\]{}])
""", re.VERBOSE)


@dataclass(eq=False)
class Tok:
    kind: str                     # name, number, string or op
    text: str
    bracket: bool = False         # a dict's `{` or `}`: a bracket, not a body's brace
    after: str | None = None      # a comment after it on its source line
    inner: list[str] = field(default_factory=list)   # comments on lines of their own just before it


@dataclass(eq=False)
class Line:
    """One line of the layout before long statements are broken: a statement,
    a header ending in `{`, a `}`, or a comment on a line of its own."""
    toks: list[Tok]
    comment: str | None
    depth: int                    # `{` levels around it
    blank: bool                   # a blank line before it in the source
    key_width: int = 0            # a train setting: the block's longest key

    @property
    def opens(self) -> bool:
        return bool(self.toks) and self.toks[-1].text == "{" and not self.toks[-1].bracket

    @property
    def closes(self) -> bool:
        return bool(self.toks) and self.toks[0].text == "}" and not self.toks[0].bracket


DICT_AFTER = frozenset({"=", ":", ",", "(", "["})   # a `{` after one of these opens a dict (syntax.py)


def opener(t: Tok) -> bool:
    return t.text in OPENERS or t.bracket and t.text == "{"


def closer(t: Tok) -> bool:
    return t.text in CLOSERS or t.bracket and t.text == "}"


def format_text(text: str, name: str = "<spec>") -> str:
    """The canonical layout of spec text. Raises nnspec.SpecError, with every
    error located, when the text is not a valid spec."""
    import nnspec
    text = text.removeprefix("\ufeff")
    nnspec.loads(text, name)                          # a file with errors is not formatted
    out = render(split_lines(text))
    if out != text and _structure(text, name) != _structure(out, name):   # (unchanged: nothing to check)
        raise AssertionError(f"{name}: formatting would change the spec's meaning; "
                             f"the file was left as it is (a bug in nnspec fmt)")
    return out


# ------------------------------------------------------------------ tokens -> lines

def _tokens(text: str):
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:                                 # loads() accepted it, so this is a bug
            raise AssertionError(f"nnspec fmt cannot read {text[pos:pos + 10]!r}")
        yield m.lastgroup, m.group()
        pos = m.end()


def split_lines(text: str) -> list[Line]:
    """The file as lines of tokens, each comment attached where it was:
    after the token it follows on its line, or before the next token."""
    lines: list[Line] = []
    cur: list[Tok] = []
    cur_blank = False
    pending: list[str] = []       # own-line comments inside a statement that goes on
    depth = brackets = newlines = 0
    prev: Tok | None = None
    code_on_line = False
    braces: list[bool] = []       # per open `{`: whether it is a dict's

    def end():
        nonlocal cur
        if cur:
            lines.append(Line(cur, None, depth, cur_blank))
            cur = []

    for kind, value in _tokens(text):
        if kind == "ws":
            continue
        if kind in ("nl", "cont"):
            code_on_line = False
            if kind == "nl":
                newlines += 1
                if brackets == 0 and cur and cur[-1].text not in CONTINUES:
                    end()
            continue
        if kind == "comment":
            comment = value.rstrip()
            if code_on_line:
                prev.after = comment
            elif cur:
                pending.append(comment)
            else:
                lines.append(Line([], comment, depth, newlines >= 2))
            newlines = 0
            continue
        tok = Tok(kind, value, inner=pending)
        if value == "{":
            tok.bracket = prev is not None and prev.text in DICT_AFTER
            braces.append(tok.bracket)
        elif value == "}":
            tok.bracket = bool(braces) and braces.pop()
        pending = []
        if not cur:
            cur_blank = newlines >= 2
        newlines, code_on_line, prev = 0, True, tok
        if value == "}" and not tok.bracket:
            end()
            depth -= 1
            lines.append(Line([tok], None, depth, cur_blank))
            continue
        cur.append(tok)
        brackets += opener(tok) - closer(tok)
        if value == "{" and not tok.bracket:
            end()
            depth += 1
    end()
    lines.extend(Line([], c, depth, False) for c in pending)
    _align_train_keys(lines)
    return lines


def _align_train_keys(lines: list[Line]) -> None:
    """`key = value` lines of a top-level block other than a model or block
    (the train block) get their `=` lined up."""
    stack: list[bool] = []
    settings: list[Line] = []
    for ln in lines:
        if ln.opens:
            stack.append(ln.depth == 0 and ln.toks[0].text not in ("model", "block"))
        elif ln.closes:
            if stack.pop() and settings:
                width = max(len(s.toks[0].text) for s in settings)
                for s in settings:
                    s.key_width = width
            settings = []
        elif stack and stack[-1] and len(ln.toks) > 1 and ln.toks[1].text == "=":
            settings.append(ln)


# ------------------------------------------------------------------ lines -> text

def render(lines: list[Line]) -> str:
    rows: list[list] = []                             # [code, trailing comment or None]
    prev = None
    for ln in lines:
        if prev is not None and _blank_before(prev, ln):
            rows.append(["", None])
        if ln.comment is not None:
            rows.append([INDENT * ln.depth + ln.comment, None])
        else:
            rows.extend(_layout(ln))
        prev = ln
    _align_comments(rows)
    text = "\n".join(code if c is None else f"{code}{c}" for code, c in rows)
    return text + "\n" if text else ""


def _blank_before(prev: Line, ln: Line) -> bool:
    if prev.opens or ln.closes:
        return False
    if ln.depth == 0 and prev.closes and prev.depth == 0:
        return True                                   # sections apart
    return ln.blank


def _align_comments(rows: list[list]) -> None:
    """A trailing comment two spaces after its code; adjacent ones lined up."""
    i = 0
    while i < len(rows):
        if rows[i][1] is None:
            i += 1
            continue
        j = i
        while j < len(rows) and rows[j][1] is not None:
            j += 1
        column = max(len(rows[k][0]) for k in range(i, j)) + 2
        for k in range(i, j):
            rows[k][0] = rows[k][0].ljust(column)
        i = j


def _layout(ln: Line) -> list[list]:
    """One statement, broken where it is too long or a comment asks for it."""
    toks = _drop_trailing_commas(ln.toks)
    gaps = _gaps(toks, ln.key_width)
    depth, level = [], 0                              # bracket depth after each token
    for t in toks:
        level += opener(t) - closer(t)
        depth.append(level)
    breakable = [t.text in ("->", ",") for t in toks]
    indent, cont = INDENT * ln.depth, INDENT * (ln.depth + 1)
    rows = [[indent, None]]
    fresh = [True]                                    # the last row holds only its indent

    def width(a, b):
        return sum(len(toks[k].text) + (0 if k == a and fresh[0] else len(gaps[k])) for k in range(a, b))

    def put(a, b):
        for k in range(a, b):
            rows[-1][0] += ("" if fresh[0] else gaps[k]) + toks[k].text
            fresh[0] = False

    def newline():
        rows.append([cont, None])
        fresh[0] = True

    def place(a, b):
        if len(rows[-1][0]) + width(a, b) <= WIDTH:
            return put(a, b)
        cuts = [k for k in range(a, b - 1) if breakable[k]]
        if not cuts:
            return put(a, b)
        outer = min(depth[k] for k in cuts)
        starts = [a] + [k + 1 for k in cuts if depth[k] == outer]
        for n, (s, e) in enumerate(zip(starts, starts[1:] + [b])):
            if n and not fresh[0] and len(rows[-1][0]) + width(s, e) > WIDTH:
                newline()
            place(s, e)

    # a comment forces a line break: after the token it follows, before the token it precedes
    starts = [0] + [k for k in range(1, len(toks)) if toks[k - 1].after or toks[k].inner]
    for s, e in zip(starts, starts[1:] + [len(toks)]):
        if s:
            rows.extend([cont + c, None] for c in toks[s].inner)
            newline()
        place(s, e)
        if toks[e - 1].after:
            rows[-1][1] = toks[e - 1].after
    return rows


def _drop_trailing_commas(toks: list[Tok]) -> list[Tok]:
    out: list[Tok] = []
    for i, t in enumerate(toks):
        if t.text == "," and i + 1 < len(toks) and closer(toks[i + 1]):
            nxt = toks[i + 1]
            if t.after and out and not out[-1].after:
                out[-1].after = t.after
            elif t.after:
                nxt.inner = [t.after] + nxt.inner
            nxt.inner = t.inner + nxt.inner
            continue
        out.append(t)
    return out


def _gaps(toks: list[Tok], key_width: int) -> list[str]:
    """The space before each token (the first: none)."""
    level, before = 0, []
    for t in toks:
        before.append(level)
        level += opener(t) - closer(t)

    def tight_eq(k):              # a keyword argument's `=`, not a block parameter's default
        return toks[k].text == "=" and before[k] > 0 and not (k >= 2 and toks[k - 2].text == ":")

    def unary(k):
        if toks[k].text != "-":
            return False
        p = toks[k - 1] if k else None
        return (p is None or (p.kind == "op" and not closer(p))
                or (k == 1 and p.text in KEYWORDS))

    gaps = [""]
    for i in range(1, len(toks)):
        p, t = toks[i - 1], toks[i]
        if i == 1 and key_width and t.text == "=":
            gaps.append(" " * (key_width - len(p.text) + 1))
        elif opener(p) or closer(t) or t.text in (",", ":"):
            gaps.append("")
        elif tight_eq(i) or tight_eq(i - 1) or unary(i - 1):
            gaps.append("")
        elif opener(t) and not t.bracket:
            gaps.append("" if p.kind == "name" and not (i == 1 and p.text in KEYWORDS) else " ")
        else:
            gaps.append(" ")
    return gaps


# ------------------------------------------------------------------ files (`nnspec fmt`)

def format_files(paths: list[str], check: bool = False, diff: bool = False) -> int:
    """Format files in place (`-`: stdin to stdout); a folder means its .nn
    files. With `check` or `diff` nothing is written. Exit code as black's:
    1 when a file has errors or, with `check`, would change; else 0."""
    import sys

    from nnspec.errors import SpecError
    from nnspec.files import write_atomic

    changed = unchanged = failed = 0
    for path in _expand(paths):
        try:
            old = sys.stdin.read() if path == "-" else _read(path)
            new = format_text(old, "<stdin>" if path == "-" else path)
        except SpecError as e:
            print(e.render(), file=sys.stderr)
            failed += 1
            continue
        if new == old:
            unchanged += 1
            if path == "-" and not (check or diff):
                sys.stdout.write(new)
            continue
        changed += 1
        if diff:
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True),
                f"{path}\t(original)", f"{path}\t(formatted)"))
        if check or diff:
            print(f"would reformat {path}", file=sys.stderr)
        elif path == "-":
            sys.stdout.write(new)
        else:
            mode = os.stat(path).st_mode
            write_atomic(path, new.encode())
            os.chmod(path, stat.S_IMODE(mode))
            print(f"reformatted {path}", file=sys.stderr)
    print(_summary(changed, unchanged, failed, check or diff), file=sys.stderr)
    return 1 if failed or (check and changed) else 0


def _expand(paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        if p != "-" and os.path.isdir(p):
            out += sorted(str(f) for f in Path(p).rglob("*.nn") if f.is_file())
        else:
            out.append(p)
    return out


def _read(path: str) -> str:
    from nnspec.files import MAX_SPEC_BYTES, file_error, not_readable
    problem = not_readable(path)
    if problem is None and os.stat(path).st_size > MAX_SPEC_BYTES:
        problem = f"{os.stat(path).st_size:,} bytes; a spec is at most {MAX_SPEC_BYTES:,}"
    if problem is None:
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8")
        except (OSError, ValueError) as e:            # UnicodeDecodeError is a ValueError
            problem = getattr(e, "strerror", None) or str(e)
    raise file_error(path, f"cannot read spec: {problem}")


def _summary(changed: int, unchanged: int, failed: int, dry: bool) -> str:
    def files(n):
        return f"{n} file{'' if n == 1 else 's'}"
    parts = []
    if changed:
        parts.append(f"{files(changed)} {'would be reformatted' if dry else 'reformatted'}")
    if unchanged:
        parts.append(f"{files(unchanged)} {'would be left' if dry else 'left'} unchanged")
    if failed:
        parts.append(f"{files(failed)} with errors, left as they are")
    return ", ".join(parts) or "no files"


# ------------------------------------------------------------------ the safety check

def _structure(text: str, name: str):
    """The parsed spec without its source positions: equal before and after."""
    from pydantic import BaseModel

    from nnspec.errors import Span
    from nnspec.syntax import parse

    def walk(v):
        if isinstance(v, BaseModel):
            return (type(v).__name__,) + tuple(
                (k, walk(x)) for k, x in v.__dict__.items()
                if k not in ("file", "source", "errors") and not isinstance(x, Span)
                and not (isinstance(x, list) and x and isinstance(x[0], Span)))
        if isinstance(v, list):
            return tuple(walk(x) for x in v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return type(v).__name__, v
        return v

    return walk(parse(text, name))
