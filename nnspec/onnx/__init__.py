"""ONNX out and in: export (export.py), int8/float16 export (quantize.py).
`import onnx` inside this package is the real onnx library (absolute imports)."""
