"""Text for an `int64[T]` input: `csv(PATH, target=COL, text=COL,
tokens=words|chars, vocab=N, lowercase=true)`.

Tokenising (`tokenize`): the text is stripped and, with `lowercase` (the
default), lowercased; `words` are then the runs of letters and digits
(Unicode; everything else, `_` included, separates: "Don't stop!" -> don, t,
stop), `chars` every character, spaces and punctuation included.

The vocabulary (`fit`) is built on the training split only: the tokens by
how often they occur there, most frequent first, ties in code-point order of
the token, cut to `vocab` ids in all. Ids: 0 is padding, 1 an unknown token
(one not in the vocabulary, such as a word seen only in validation), real
tokens from 2. Each text becomes its first T token ids (T from the input's
declared shape), padded at the end with 0.

The vocabulary and these settings travel with the model: `text/INPUT` in
weights.npz and `nnspec.text` in the ONNX metadata (JSON), so that `nnspec
predict` and `nnspec eval` read a CSV of raw text as training did."""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, replace

from ..errors import did_you_mean
from ..lazy import np
from .table import DataError, field_column, parse_number

PAD, UNKNOWN, FIRST = 0, 1, 2            # ids: padding, a token not in the vocabulary, the first real token
MODES = ("words", "chars")
_WORD = re.compile(r"[^\W_]+")           # a run of letters and digits


def tokenize(text: str, mode: str, lowercase: bool) -> list[str]:
    text = text.strip()
    if lowercase:
        text = text.lower()
    return _WORD.findall(text) if mode == "words" else list(text)


@dataclass(frozen=True)
class TextSettings:
    """How a csv's text column is read (the source's options)."""
    column: str
    mode: str = "words"
    lowercase: bool = True
    vocab: int | None = None             # ids in all (0 and 1 included); None: the embedding's rows
    input: str | None = None             # the model input it feeds (with `inputs={...}`); None: the only one


@dataclass
class Vocabulary:
    """A fitted vocabulary and the settings to read text with it."""
    column: str
    mode: str
    lowercase: bool
    length: int                          # T: ids a text
    tokens: list[str]                    # the tokens of ids 2, 3, ...

    @property
    def size(self) -> int:
        return len(self.tokens) + FIRST

    def encode(self, texts) -> np.ndarray:
        """Token lists -> (N, T) int64: the first T ids, padded at the end with 0."""
        index = {t: i for i, t in enumerate(self.tokens, FIRST)}
        out = np.full((len(texts), self.length), PAD, np.int64)
        for n, toks in enumerate(texts):
            ids = [index.get(t, UNKNOWN) for t in toks[:self.length]]
            out[n, :len(ids)] = ids
        return out

    def read(self, texts: list[str]) -> np.ndarray:
        """Raw strings -> (N, T) int64, tokenised as in training: what a
        Python caller hands to Network.forward."""
        return self.encode([tokenize(t, self.mode, self.lowercase) for t in texts])

    def summary(self) -> dict:
        """For resolved.json and the report: the settings, the size and the top tokens."""
        return {"column": self.column, "tokens": self.mode, "lowercase": self.lowercase,
                "length": self.length, "size": self.size, "most_frequent": self.tokens[:10]}

    def to_json(self) -> str:
        return json.dumps({"column": self.column, "tokens": self.mode, "lowercase": self.lowercase,
                           "length": self.length, "vocabulary": self.tokens})

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        """The inverse of to_json; ValueError (or KeyError) for anything else."""
        d = json.loads(text)
        if d["tokens"] not in MODES or not isinstance(d["vocabulary"], list):
            raise ValueError(f"not a vocabulary: {text[:60]!r}")
        return cls(str(d["column"]), d["tokens"], bool(d["lowercase"]), int(d["length"]),
                   [str(t) for t in d["vocabulary"]])


def fit_tokens(texts, limit: int | None) -> list[str]:
    """The vocabulary's tokens (ids 2, 3, ...): most frequent first, ties in
    code-point order, at most `limit` - 2 of them."""
    counts = Counter(t for toks in texts for t in toks)
    order = sorted(counts, key=lambda t: (-counts[t], t))
    return order if limit is None else order[:max(0, limit - FIRST)]


# ------------------------------------------------------------ reading a csv


def read_text(path, header: list[str], body: list, settings: TextSettings, tcol: int | None,
              delimiter: str, written: str) -> np.ndarray:
    """The text column of every row tokenised: (N,) token lists. Errors name
    the file, row and column: the column missing, one that holds numbers, or
    a row whose text is empty or has no tokens."""
    j = text_column(path, header, settings.column, tcol, written)
    rows = [(line, row[j]) for line, row in body]
    if all(parse_number(v) is not None for _, v in rows):
        texts = [h for k, h in enumerate(header) if k != tcol and k != j
                 and not all(parse_number(r[k]) is not None for _, r in body)]
        hint = f"; the columns holding text are {', '.join(texts)}" if texts else ""
        raise DataError(f"column `{header[j]}` holds numbers (such as {rows[0][1]!r}), not text; "
                        f"text={settings.column} names the column of text to tokenise{hint}",
                        str(path), 1, 1)
    out = np.empty(len(rows), object)
    for n, ((line, value), (_, row)) in enumerate(zip(rows, body)):
        toks = tokenize(value, settings.mode, settings.lowercase)
        if not toks:
            what = ("is empty" if not value.strip() else
                    f"holds no words ({value!r}; a word is a run of letters and digits)")
            raise DataError(f"the text in column `{header[j]}` {what}; every row needs text",
                            str(path), line, field_column(row, j, delimiter))
        out[n] = toks
    return out


def text_column(path, header: list[str], column: str, tcol: int | None, written: str) -> int:
    if column not in header:
        raise DataError(f"no column `{column}` (text); `{written}` has {', '.join(header)}"
                        f"{did_you_mean(column, header)}", str(path), 1, 1)
    j = header.index(column)
    if j == tcol:
        raise DataError(f"column `{column}` is named as both the target and the text", str(path), 1, 1)
    return j


# ------------------------------------------------------------ the training split


def text_input(inputs, settings: TextSettings, origin: str):
    """The model input a text column feeds, int64[T]: the one input, or the
    one `inputs={...}` gives the text column to."""
    problem = input_problem(inputs, settings)
    if problem:
        raise DataError(f"{origin}: {problem}")
    return inputs[0]


def encode(data, val, settings: TextSettings, name: str, length: int, limit: int | None):
    """The training split's vocabulary fitted (cut to `settings.vocab`, else
    `limit`, the embedding's rows) and both splits' token lists for input
    `name` encoded with it to `length` ids: (data, val) with x[name] (N, T)
    int64 and text {name: Vocabulary}."""
    texts = data.x[name]
    voc = Vocabulary(settings.column, settings.mode, settings.lowercase, length,
                     fit_tokens(texts, settings.vocab or limit))
    data = replace(data, x={**data.x, name: voc.encode(texts)}, text={name: voc})
    if val is not None and name in val.x and val.x[name].dtype == object:
        val = replace(val, x={**val.x, name: voc.encode(val.x[name])}, text={name: voc})
    return data, val


# ------------------------------------------------------------ checks before any data is read


def input_problem(inputs, settings: TextSettings) -> str | None:
    """What stops a text column feeding this model's inputs, or None."""
    named = [v for v in inputs if v.name == settings.input]
    if settings.input is not None and not named:
        return (f"`inputs` gives text column `{settings.column}` to `{settings.input}`, which is not "
                f"an input of the model (it has {', '.join(f'`{v.name}`' for v in inputs)})")
    if settings.input is None and len(inputs) != 1:
        return (f"text={settings.column} feeds the model's one input, and this one has "
                f"{', '.join(f'`{v.name}`' for v in inputs)}; name each input's columns with "
                f"inputs={{{inputs[0].name}: [{settings.column}], ...}}")
    v = named[0] if named else inputs[0]
    if v.dtype != "int64" or len(v.shape) != 1:
        return (f"text={settings.column} gives token ids, one a position: the input must be "
                f"int64[T], such as `input {v.name}: int64[40]`; `{v.name}` is "
                f"{v.dtype}{list(v.shape)}")
    return None


def model_problems(settings: TextSettings, graph) -> list[tuple[str, list[str]]]:
    """(message, notes) for a text source that cannot fit the model: an input
    that is not int64[T], or a vocabulary larger than the embedding reading it."""
    problem = input_problem(graph.inputs, settings)
    if problem:
        return [(problem, [])]
    name = settings.input or graph.inputs[0].name
    out = []
    for n in graph.nodes:
        rows = n.op.vocabulary(n.p)
        if rows is None or name not in n.inputs:
            continue
        pad = getattr(n.p, "padding", None)
        if pad not in (None, PAD):
            out.append((f"text={settings.column} pads with id {PAD} (and marks unknown tokens {UNKNOWN}); "
                        f"`{n.name}` takes padding={pad}: write padding={PAD}",
                        [f"`{n.name}` is at {n.span.file}:{n.span.line}:{n.span.column}"]))
        if settings.vocab is not None and settings.vocab > rows:
            out.append((f"vocab={settings.vocab} is more token ids than the {rows} rows of "
                        f"`{n.kind}` `{n.name}` reading input `{name}`; make it vocab={rows} or "
                        f"less, or the embedding larger",
                        [f"`{n.name}` is at {n.span.file}:{n.span.line}:{n.span.column}"]))
    return out


def validation_problems(training: TextSettings | None, val: TextSettings) -> list[str]:
    """A validation csv with text is read with the training data's tokens and vocabulary."""
    if training is None:
        return [f"the validation data has text={val.column}, but the training data has no text column"]
    out = []
    if (val.mode, val.lowercase) != (training.mode, training.lowercase):
        out.append(f"the validation text is read with tokens={val.mode}, lowercase="
                   f"{str(val.lowercase).lower()}, the training text with tokens={training.mode}, "
                   f"lowercase={str(training.lowercase).lower()}; they must agree")
    if val.vocab is not None:
        out.append("the vocabulary is built on the training data: leave `vocab` out of the validation source")
    return out
