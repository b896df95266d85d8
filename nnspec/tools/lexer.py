"""A Pygments lexer for .nn files, registered as the `nnspec` entry point of
`pygments.lexers` (`pygmentize -l nnspec FILE`). Pygments is an extra
(`pip install "nnspec[editor]"`); nothing else in nnspec imports this module.

Keywords, comments, strings and numbers everywhere; in model and block bodies
the registered layers, in the train block its settings and the registered
losses, optimizers, schedules, data sources and metrics."""
from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Whitespace

from .vocabulary import vocabulary

_WORDS = vocabulary()
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class NnspecLexer(RegexLexer):
    name = "nnspec"
    aliases = ["nnspec", "nn"]
    filenames = ["*.nn"]
    mimetypes = ["text/x-nnspec"]
    url = "https://github.com/nnspec/nnspec"

    tokens = {
        "root": [
            (r"(train)(\s*)(\{)", bygroups(Keyword, Whitespace, Punctuation), "train"),
            (rf"(model|block)(\s+)({_NAME})", bygroups(Keyword, Whitespace, Name.Class)),
            (words(_WORDS["layer"], prefix=r"\b", suffix=r"\b"), Name.Builtin),
            include("common"),
        ],
        "train": [
            (r"\}", Punctuation, "#pop"),
            (r"\{", Punctuation, "dict"),          # {recon: mse, cls: cross_entropy}

            (words(_WORDS["setting"], prefix=r"(?m)^(\s*)", suffix=r"(\s*)(=)"),
             bygroups(Whitespace, Name.Attribute, Whitespace, Operator)),
            (words(_WORDS["option"], prefix=r"\b", suffix=r"\b"), Name.Builtin),
            include("common"),
        ],
        "dict": [
            (r"\}", Punctuation, "#pop"),
            (r"\{", Punctuation, "#push"),
            (words(_WORDS["option"], prefix=r"\b", suffix=r"\b"), Name.Builtin),
            include("common"),
        ],
        "common": [
            (r"[ \t\f]+|\r?\n|\\\r?\n", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"(?:[^"\\\n]|\\.)*"', String.Double),
            (r"(?:\d+\.\d*|\.\d+|\d+[eE][+-]?\d+)(?:[eE][+-]?\d+)?", Number.Float),
            (r"\d+", Number.Integer),
            (words(_WORDS["keyword"], prefix=r"\b", suffix=r"\b"), Keyword),
            (words(_WORDS["constant"], prefix=r"\b", suffix=r"\b"), Keyword.Constant),
            (words(_WORDS["type"], prefix=r"\b", suffix=r"\b"), Keyword.Type),
            (_NAME, Name),
            (r"->", Operator),
            (r"//|[-+*/%=]", Operator),
            (r"[(){}\[\],:]", Punctuation),
        ],
    }
