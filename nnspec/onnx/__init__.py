"""ONNX out and in: export (export.py, functions.py for blocks as functions),
int8/float16 export (quantize.py),
import (importer.py, with read.py, masks.py, recognise.py, rules.py, blocks.py,
spec_text.py).
`import onnx` inside this package is the real onnx library (absolute imports)."""
