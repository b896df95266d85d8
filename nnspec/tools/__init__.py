"""Tools around the language: the formatter (fmt.py) and the Pygments lexer
(lexer.py). Nothing in the compiler imports them."""
