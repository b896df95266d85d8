"""Editor-side figures: how long after a change to a 500-layer file the
language server's diagnostics arrive, and how long `nnspec graph` takes on
a 500-layer spec.

The server runs as an editor runs it (`python -m nnspec lsp` over stdio,
driven by pygls's own client); each change is timed from the moment it is
sent to the moment the diagnostics for that version arrive. Changes
alternate between a valid edit and one that breaks a line, in the middle of
the file. `nnspec graph` is timed as a whole command (start-up included)
and as the in-process render alone.

    python bench/editor_latency.py [--changes 40] [--layers 500]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types as T
from pygls.lsp.client import LanguageClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_latency import generated_spec  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def flat_spec(layers: int) -> str:
    """One layer a line, `layers` layers in all: the file people picture."""
    body = ["    dense(32)", "    relu"] * ((layers - 2) // 2)
    return ("model flat {\n    input x: float32[32]\n" + "\n".join(body) +
            "\n    dense(10)\n    softmax\n}\n\ntrain {\n    data = dataset(\"digits\")\n    loss = cross_entropy\n"
            "    optimizer = adam\n    epochs = 1\n    batch = 32\n}\n")


async def diagnostics_latency(text: str, changes: int) -> list[float]:
    client = LanguageClient("bench", "1")
    arrived: dict[int, tuple[float, int]] = {}
    waiting: dict[int, asyncio.Future] = {}

    @client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: T.PublishDiagnosticsParams):
        arrived[params.version] = (time.perf_counter(), len(params.diagnostics))
        fut = waiting.pop(params.version, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    env = {**os.environ, "PYTHONPATH": ROOT}
    await client.start_io(sys.executable, "-m", "nnspec", "lsp", env=env)
    await client.initialize_async(T.InitializeParams(capabilities=T.ClientCapabilities()))
    client.initialized(T.InitializedParams())
    uri = Path(tempfile.gettempdir(), "bench_500.nn").as_uri()
    loop = asyncio.get_running_loop()
    waiting[1] = loop.create_future()
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(
        uri=uri, language_id="nnspec", version=1, text=text)))
    await waiting[1] if 1 in waiting else None
    lines = text.split("\n")
    row = len(lines) // 2
    while "dense(" not in lines[row]:
        row += 1
    col = lines[row].index("dense(") + len("dense(")
    times = []
    for v in range(2, changes + 2):
        new = "33" if v % 2 == 0 else "x3"                      # valid, then an unknown name: `dense(x3)`
        waiting[v] = loop.create_future()
        sent = time.perf_counter()
        client.text_document_did_change(T.DidChangeTextDocumentParams(
            text_document=T.VersionedTextDocumentIdentifier(uri=uri, version=v),
            content_changes=[T.TextDocumentContentChangePartial(
                range=T.Range(start=T.Position(line=row, character=col),
                              end=T.Position(line=row, character=col + 2)), text=new)]))
        await asyncio.wait_for(waiting[v], 30)
        got, n = arrived[v]
        if (n > 0) != (new == "x3"):
            raise SystemExit(f"version {v}: {n} diagnostics for {new!r}")
        times.append(got - sent)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return times


def graph_times(text: str, repeats: int) -> tuple[list[float], list[float]]:
    import nnspec
    from nnspec.report.graph import render
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "deep.nn")
        Path(path).write_text(text)
        cmd = [sys.executable, "-m", "nnspec", "graph", path, "-o", os.path.join(d, "deep.svg")]
        env = {**os.environ, "PYTHONPATH": ROOT}
        subprocess.run(cmd, check=True, capture_output=True, env=env)       # warm the caches
        whole = []
        for _ in range(repeats):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            whole.append(time.perf_counter() - t)
    spec = nnspec.loads(text, "deep.nn")
    inner = []
    for _ in range(repeats):
        t = time.perf_counter()
        render(spec, "svg")
        inner.append(time.perf_counter() - t)
    return whole, inner


def row(name: str, ts: list[float]) -> str:
    ts = sorted(ts)
    p90 = ts[min(len(ts) - 1, int(0.9 * len(ts)))]
    return (f"{name:<52} {1000 * statistics.median(ts):>8.1f} {1000 * p90:>8.1f} {1000 * ts[0]:>8.1f} "
            f"{1000 * ts[-1]:>8.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=40)
    ap.add_argument("--layers", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    print(f"{'ms':<52} {'median':>8} {'p90':>8} {'min':>8} {'max':>8}")
    for name, text in [(f"lsp diagnostics after a change, {a.layers} lines of layers", flat_spec(a.layers)),
                       (f"lsp diagnostics after a change, {a.layers} layers with blocks", generated_spec(a.layers))]:
        print(row(name, asyncio.run(diagnostics_latency(text, a.changes))), flush=True)
    for name, text in [(f"{a.layers} lines of layers", flat_spec(a.layers)),
                       (f"{a.layers} layers with blocks", generated_spec(a.layers))]:
        whole, inner = graph_times(text, a.repeats)
        print(row(f"nnspec graph -o x.svg, {name}", whole))
        print(row(f"  of which the picture (render), {name}", inner), flush=True)


if __name__ == "__main__":
    main()
