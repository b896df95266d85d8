"""The command line: a thin shell over the API. Heavy modules (numpy, onnx,
onnxruntime) are imported inside the commands, so `--help` stays fast.

Exit codes: 0 success; 1 a spec, data or model error (reported with its
place); 2 a usage error; 130 interrupted."""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path
import os
import sys
import time


def positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {n}")
    return n


def seed_value(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number 0 or more, got {n}")
    return n


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nnspec", description="Check, train and export neural networks written as .nn specs.",
        epilog="Run `nnspec COMMAND --help` for a command's options.")
    p.add_argument("--version", action="version", version=f"nnspec {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = sub.add_parser("check", help="parse, validate and infer shapes; report every error")
    c.add_argument("files", nargs="+", metavar="FILE")
    _set_option(c)

    s = sub.add_parser("summary", help="layers, output shapes, parameters and multiply-adds")
    s.add_argument("file", metavar="FILE")
    _set_option(s)

    t = sub.add_parser("train", help="train with the spec's train block; write weights, ONNX and history")
    t.add_argument("file", metavar="FILE")
    t.add_argument("--epochs", type=positive_int, metavar="N", help="override the spec's epochs")
    t.add_argument("--batch", type=positive_int, metavar="N", help="override the spec's batch size")
    t.add_argument("--seed", type=seed_value, metavar="N", help="override the spec's seed")
    t.add_argument("-o", "--out", metavar="DIR", help="output folder (default: runs/MODEL_NAME)")
    t.add_argument("--quiet", action="store_true", help="no progress bar, only the final line")
    t.add_argument("--overwrite", action="store_true", help="replace the run in --out DIR")
    t.add_argument("--resume", metavar="DIR", help="go on with the run in DIR from its last checkpoint")
    t.add_argument("--init-weights", metavar="W.npz", help="start from these weights (matched by layer name)")
    _set_option(t)

    rs = sub.add_parser("resume", help="go on with a run from its last checkpoint (after Ctrl-C, a kill, "
                                       "or with --epochs to train longer)")
    rs.add_argument("folder", metavar="DIR")
    rs.add_argument("--epochs", type=positive_int, metavar="N", help="train up to N epochs in all")
    rs.add_argument("--quiet", action="store_true", help="no progress bar, only the final line")

    e = sub.add_parser("export", help="write an ONNX model from a spec and trained weights")
    e.add_argument("file", metavar="FILE", help="a spec (with --weights), or a run folder (its spec.nn and weights.npz)")
    e.add_argument("--weights", metavar="W", help="a weights.npz written by `nnspec train`, or the run folder holding it")
    e.add_argument("-o", "--output", required=True, metavar="MODEL.onnx")
    e.add_argument("--quantize", choices=["int8"], help="int8 weights (onnxruntime quantisation); prints "
                                                       "size and validation accuracy before and after")
    e.add_argument("--half", action="store_true", help="float16 weights and activations, float32 inputs "
                                                       "and outputs (needs nnspec[half])")
    e.add_argument("--functions", action="store_true", help="each block an ONNX local function and each "
                                                            "call one node (default: blocks inlined)")

    im = sub.add_parser("import", help="a spec and weights from an ONNX model (to read, train or export again)")
    im.add_argument("model", metavar="MODEL.onnx")
    im.add_argument("-o", "--out", metavar="DIR", help="output folder for model.nn and weights.npz "
                                                       "(default: the model's file name without .onnx)")
    im.add_argument("--overwrite", action="store_true", help="write into an --out DIR that holds files")

    bn = sub.add_parser("bench", help="latency (p50, p90, p99) and throughput of an ONNX model, "
                                      "and of nnspec's engine for a run folder")
    bn.add_argument("model", metavar="MODEL.onnx", help="an ONNX model, or a run folder (its model.onnx and engine)")
    bn.add_argument("--batch", default="1,32,256", metavar="B,B,...", help="batch sizes (default 1,32,256)")
    bn.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    bn.add_argument("--threads", type=positive_int, metavar="N", help="onnxruntime intra-op threads")
    bn.add_argument("--runs", type=positive_int, default=50, metavar="N", help="timed runs per batch size (default 50)")

    r = sub.add_parser("predict", help="run an exported model on a csv or npz file")
    r.add_argument("model", metavar="MODEL.onnx")
    r.add_argument("--data", required=True, metavar="FILE", help="a .csv (with a header) or .npz file, an image, or a folder of images")
    r.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    r.add_argument("-o", "--output", metavar="OUT.csv", help="write predictions here instead of printing")

    f = sub.add_parser("fmt", help="rewrite specs in the canonical layout (comments kept)")
    f.add_argument("files", nargs="+", metavar="FILE", help="spec files or folders; - reads stdin")
    f.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    f.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of the changes")

    g = sub.add_parser("graph", help="the model as a picture: SVG (no Graphviz needed), DOT or Mermaid")
    g.add_argument("file", metavar="SPEC")
    g.add_argument("-o", "--output", metavar="FILE",
                   help="model.svg, model.dot or model.mmd (default: MODEL_NAME.svg; - prints it)")
    g.add_argument("--format", choices=["svg", "dot", "mermaid"], help="instead of the output's extension")
    g.add_argument("--collapse", action="store_true", help="each block and repeat as one box")

    ls = sub.add_parser("lsp", help="a language server for editors, over stdio (needs nnspec[lsp])")
    ls.add_argument("--stdio", action="store_true", help="accepted for editors that pass it; stdio is the only transport")
    v = sub.add_parser("eval", help="a trained model's metrics on a data file, through onnxruntime")
    v.add_argument("model", metavar="RUN_DIR|MODEL.onnx", help="a run folder (its model.onnx) or an ONNX model")
    v.add_argument("--data", required=True, metavar="FILE",
                   help='a .csv/.tsv (with a header) or .npz file, an image or a folder of images '
                        '(one subfolder a class), or a built-in set: \'dataset("digits")\'')
    v.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    v.add_argument("--json", action="store_true", help="print the result as JSON")

    sw = sub.add_parser("sweep", help="train many variants of a spec (its sweep block, or --grid) in parallel")
    from .sweep.command import add_arguments
    add_arguments(sw)

    rp = sub.add_parser("report", help="(re)make a run folder's report.html")
    rp.add_argument("run", metavar="RUN_DIR", help="a folder written by `nnspec train`")

    cv = sub.add_parser("convert", help="a CSV file of any size into a folder of .npy files for npy(DIR)")
    cv.add_argument("csv", metavar="CSV", help="a .csv (or, with --delimiter, other) file with a header row")
    cv.add_argument("-o", "--output", required=True, metavar="DIR", help="the folder to write (x.npy, y.npy, ...)")
    cv.add_argument("--target", metavar="COL", help="the target column (the rest are features)")
    cv.add_argument("--delimiter", default=",", help='the cell separator: "," (default), ";", "\\t" or tab')
    cv.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    p.set_defaults(commands={"check": c, "summary": s, "train": t, "resume": rs, "export": e, "import": im, "bench": bn, "predict": r, "fmt": f,
                             "graph": g, "lsp": ls,
                             "eval": v, "report": rp, "sweep": sw, "convert": cv})
    return p


def _set_option(p) -> None:
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                   help="a model parameter or train setting, in the .nn syntax: --set width=256 "
                        "--set \"optimizer=sgd(lr=0.1)\" (repeatable)")


def _version() -> str:
    from . import __version__
    return __version__


# ------------------------------------------------------------------ commands

def cmd_check(args) -> int:
    from .api import load
    from .errors import SpecError
    failed = 0
    for f in args.files:
        try:
            spec = load(f, args.overrides)
        except SpecError as e:
            print(e.render(), file=sys.stderr)
            failed += 1
            continue
        g = spec.graph
        out = g.values[g.outputs[0]].shape
        if len(g.outputs) > 1:
            shapes = ", ".join(f"{o} {list(g.values[v].shape)}" for o, v in zip(g.output_names, g.outputs))
            print(f"{f}: ok: model `{g.name}`, {len(g.nodes)} layers, outputs {shapes}")
            continue
        print(f"{f}: ok: model `{g.name}`, {len(g.nodes)} layers, output {list(out)}")
    return 1 if failed else 0


def cmd_summary(args) -> int:
    from .api import load
    from .summary import summary_table
    spec = load(args.file, args.overrides)
    print(summary_table(spec))
    return 0


def cmd_train(args) -> int:
    from .api import load
    from .training.runs import RunFolderError, new_run_folder, read_info

    if args.resume:
        try:
            read_info(Path(args.resume))
        except RunFolderError as e:
            print(f"nnspec train: error: --resume {args.resume}: {e}", file=sys.stderr)
            return 2
    overrides = list(args.overrides)
    if args.init_weights:
        path = str(Path(args.init_weights).resolve()).replace("\\", "\\\\").replace('"', '\\"')
        overrides.append(f'init_weights="{path}"')          # a .nn string: \\ and \" are its escapes
    spec = load(args.file, overrides)
    if args.resume:
        return _train(spec, Path(args.resume), args, overrides, resume=True)
    try:
        folder = new_run_folder(args.out, spec.name, args.overwrite)
    except RunFolderError as e:                 # said now, not after the training
        print(f"nnspec train: error: --out {args.out or Path('runs') / spec.name}: {e}", file=sys.stderr)
        return 2
    return _train(spec, folder, args, overrides, resume=False)


def cmd_resume(args) -> int:
    from .api import load
    from .training.runs import RunFolderError, read_info
    folder = Path(args.folder)
    try:
        info = read_info(folder)
    except RunFolderError as e:
        print(f"nnspec resume: error: {e}", file=sys.stderr)
        return 2
    spec = load(folder / "spec.nn", info["overrides"])
    args.batch, args.seed = info["batch"], info["seed"]
    args.epochs = args.epochs or info["epochs"]
    return _train(spec, folder, args, info["overrides"], resume=True)


def _train(spec, folder: Path, args, overrides: list, resume: bool) -> int:
    """Train into a run folder (a checkpoint each epoch, throttled), and write
    its files as one set; Ctrl-C and SIGTERM stop after the current batch."""
    from .errors import SpecError
    from .progress import Progress
    from .training import Diverged, train
    from .training.runs import CHECKPOINT, sigterm_as_interrupt, write_info

    cfg = spec.train
    epochs, batch = args.epochs or cfg.epochs, args.batch or cfg.batch
    seed = cfg.seed if args.seed is None else args.seed
    progress = Progress(enabled=not args.quiet)
    if not resume:
        write_info(folder, spec, overrides, epochs, batch, seed)
    else:                               # once the checkpoint was accepted: a resume may add epochs
        def on_epoch(*a, written=[]):
            if not written:
                write_info(folder, spec, overrides, epochs, batch, seed)
                written.append(True)
            progress.epoch(*a)
    started = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            result = train(spec, epochs=epochs, batch=batch, seed=seed, on_batch=progress.batch,
                           on_epoch=on_epoch if resume else progress.epoch, checkpoint=folder / CHECKPOINT,
                           resume=folder / CHECKPOINT if resume else None)
    except Diverged as e:
        progress.close()
        print(e.render(), file=sys.stderr)
        if e.result.best_epoch:                  # the best finite weights, as after Ctrl-C
            _write_run(folder, spec, e.result, overrides)
            print(f"wrote the run up to epoch {e.result.epochs_run} to {folder}", file=sys.stderr)
        else:
            print("no epoch finished; nothing written", file=sys.stderr)
            _forget(folder, resume)
        _warn(e.result.warnings)
        return 1
    except SpecError:                            # bad data, found before any epoch: no run to keep
        progress.close()
        _forget(folder, resume)
        raise
    progress.close()
    elapsed = time.perf_counter() - started
    if result.epochs_run == 0:
        print("interrupted before the first epoch ended; nothing written", file=sys.stderr)
        _forget(folder, resume)
        return 130
    stopped = _write_run(folder, spec, result, overrides)
    final = "  ".join(f"{k} {_fmt(v)}" for k, v in result.final.items() if k != "lr")
    why = ("interrupted; kept the best epoch so far" if result.interrupted else
           "stopped early; kept the best epoch" if result.stopped_early else "last epoch")
    went_on = f", resumed after epoch {result.resumed_from}" if resume else ""
    print(f"final: epoch {result.best_epoch} of {result.epochs_run} ({why}{went_on}), {elapsed:.1f}s  {final}")
    report = ", report.html" if (folder / "report.html").is_file() else ""
    diagnostics = ", diagnostics.csv" if (folder / "diagnostics.csv").is_file() else ""
    print(f"wrote {folder}/weights.npz, model.onnx, history.csv, spec.nn, resolved.json{diagnostics}{report}")
    _warn(result.warnings)
    if result.interrupted:
        print(f"go on with: nnspec resume {folder}", file=sys.stderr)
    return 130 if result.interrupted or stopped else 0


def _warn(warnings: list[str]) -> None:
    """The training diagnostics' findings (training/diagnostics.py), after the final line."""
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)


def _forget(folder: Path, resume: bool) -> None:
    """A new run that ended before its first checkpoint leaves no folder behind."""
    import shutil

    from .training.runs import CHECKPOINT
    if not resume and not (folder / CHECKPOINT).exists():
        shutil.rmtree(folder, ignore_errors=True)


def _write_run(folder: Path, spec, result, overrides: list) -> bool:
    """The run's files as one set, report.html with them (training/runs.py)."""
    from .report.run import write_report_or_warn
    from .training.runs import save_run
    return save_run(folder, spec, result, overrides, write_report_or_warn)


def cmd_export(args) -> int:
    from .api import load
    path, weights = Path(args.file), args.weights
    if path.is_dir():                                # a run folder: its spec and weights
        path, weights = path / "spec.nn", weights or path / "weights.npz"
    if weights is None:
        args.commands["export"].error("--weights W is needed with a spec (or give a run folder)")
    if Path(weights).is_dir() and (Path(weights) / "weights.npz").is_file():
        weights = Path(weights) / "weights.npz"      # --weights RUN_DIR: the run's weights
    if args.functions and (args.quantize or args.half):
        # onnxruntime's quantiser and onnxconverter-common's float16 pass rewrite the main graph only
        args.commands["export"].error("--functions does not combine with --quantize or --half: their "
                                      "converters do not look inside functions; export one or the other")
    spec = load(path)
    net = spec.build(seed=0)
    net.load(weights)
    if args.quantize or args.half:
        from .onnx.quantize import QuantizeError, optimize
        try:
            optimize(spec, net, args.output, args.quantize, args.half)
        except QuantizeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    net.export_onnx(args.output, spec.source, functions=args.functions)
    print(f"wrote {args.output}")
    if args.functions and not spec.graph.calls:
        print("note: the spec calls no `block`, so there are no functions: the model is as without --functions")
    return 0


def cmd_import(args) -> int:
    from .onnx.importer import import_onnx, out_dir_problem, write_import
    out = Path(args.out) if args.out else Path(Path(args.model).stem)
    problem = out_dir_problem(out, args.overwrite)
    if problem:                                  # said before the model is read
        print(f"nnspec import: error: --out {out}: {problem}", file=sys.stderr)
        return 2
    imported = import_onnx(args.model)
    paths = write_import(imported, out, args.overwrite)
    g = imported.spec.graph
    print(f"imported {args.model}: {len(g.nodes)} layer{'s' * (len(g.nodes) != 1)}, "
          f"{sum(a.size for k, a in imported.weights.items() if '.' in k):,} weights")
    print(f"wrote {', '.join(map(str, paths))}")
    return 0


def cmd_bench(args) -> int:
    from .benchmark import run
    return run(args)


def cmd_predict(args) -> int:
    import csv
    import io

    from .files import write_atomic
    from .runtime import OnnxModel, predict_file
    model = OnnxModel(args.model, args.device)
    pred = predict_file(model, args.data)
    header, columns = _prediction_columns(pred)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in zip(*columns):
        w.writerow([str(v) for v in row])       # numpy's shortest text that reads back the same float32
    n = len(columns[0])
    if args.output:
        write_atomic(args.output, buf.getvalue().encode())
        print(f"wrote {n} predictions to {args.output}")
    else:
        sys.stdout.write(buf.getvalue())
    if pred.metrics:
        skipped = f" ({n - pred.scored} of {n} rows without a known target left out)" if pred.scored < n else ""
        print("metrics: " + "  ".join(f"{k} {_fmt(v)}" for k, v in pred.metrics.items()) + skipped,
              file=sys.stderr if not args.output else sys.stdout)
    return 0


def _prediction_columns(pred) -> tuple[list[str], list]:
    """Column names and values: for a classifier the label and one probability
    per class (a sigmoid's: of the second label); then every output's values,
    one column each, named after the output."""
    header, columns = [], []
    outputs = list(pred.outputs.items())
    if isinstance(pred.predicted, dict):        # several outputs: OUTPUT (its label), OUTPUT_p_LABEL, OUTPUT_j
        for name, y in outputs:
            if name in pred.predicted:
                probs, labels = pred.probabilities[name], pred.labels[name]
                header += [name] + [f"{name}_p_{label}" for label in
                                    (labels if probs.shape[1] == len(labels) else labels[-1:])]
                columns += [pred.predicted[name], *probs.T]
                continue
            flat = y.reshape(len(y), -1)
            header += [name] if flat.shape[1] == 1 else [f"{name}_{j}" for j in range(flat.shape[1])]
            columns += list(flat.T)
        return header, columns
    if pred.predicted is not None:
        header.append("prediction")
        columns.append(pred.predicted)
        probs = pred.probabilities
        names = pred.labels if probs.shape[1] == len(pred.labels) else pred.labels[-1:]
        header += [f"p_{label}" for label in names]
        columns += list(probs.T)
        outputs = outputs[1:]
    for i, (name, y) in enumerate(outputs):
        flat = y.reshape(len(y), -1)
        base = "prediction" if i == 0 and pred.predicted is None else name
        header += [base] if flat.shape[1] == 1 else [f"{base}_{j}" for j in range(flat.shape[1])]
        columns += list(flat.T)
    return header, columns


def _fmt(v, digits: int = 4) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3) else f"{v:.{digits}f}"
    return str(v)


def cmd_fmt(args) -> int:
    from .tools.fmt import format_files
    return format_files(args.files, check=args.check, diff=args.diff)


def cmd_graph(args) -> int:
    from pathlib import Path

    from .api import load
    from .files import write_atomic
    from .report.graph import FORMATS, render
    spec = load(args.file)
    out = args.output or f"{spec.name}.svg"
    fmt = args.format or FORMATS.get(Path(out).suffix.lower(), "svg" if out == "-" else None)
    if fmt is None:
        args.commands["graph"].error(f"cannot tell the format of {out}: name it .svg, .dot or .mmd, "
                                     f"or give --format")
    text = render(spec, fmt, collapse=args.collapse)
    if out == "-":
        sys.stdout.write(text)
    else:
        write_atomic(out, text.encode())
        print(f"wrote {out} ({fmt}, {len(spec.graph.nodes)} layers)")
    return 0


def cmd_lsp(args) -> int:
    try:
        from .tools.lsp import serve
    except ImportError as e:
        if (e.name or "").split(".")[0] not in ("pygls", "lsprotocol"):
            raise
        print("nnspec lsp: error: the language server needs pygls; install it with "
              "pip install 'nnspec[lsp]' (or pip install pygls)", file=sys.stderr)
        return 1
    return serve()


def cmd_eval(args) -> int:
    import json

    from .evaluate import data_argument, evaluate_file, model_path, render_text
    from .runtime import OnnxModel
    path = model_path(args.model)
    result = evaluate_file(OnnxModel(path, args.device), data_argument(args.data))
    result["model"] = str(path)
    print(json.dumps(result, indent=2) if args.json else render_text(result))
    return 0


def cmd_report(args) -> int:
    from pathlib import Path

    from .report.curves import HINT, have_matplotlib
    from .report.run import write_report
    run = Path(args.run)
    if not (run / "history.csv").is_file() and not (run / "resolved.json").is_file():
        print(f"nnspec report: error: {run}: not a run folder (no history.csv or resolved.json); "
              f"give a folder written by `nnspec train`", file=sys.stderr)
        return 1
    print(f"wrote {write_report(run)}")
    if not have_matplotlib():
        print(f"note: no curves; {HINT}", file=sys.stderr)
    return 0


def cmd_convert(args) -> int:
    from pathlib import Path

    from .data.convert import convert_csv
    out = Path(args.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        print(f"nnspec convert: error: {out} exists; choose another folder, or --overwrite to replace it",
              file=sys.stderr)
        return 2
    delimiter = "\t" if args.delimiter in ("\\t", "tab") else args.delimiter
    if len(delimiter) != 1:
        print(f"nnspec convert: error: --delimiter {args.delimiter!r}: expected one character", file=sys.stderr)
        return 2
    done = convert_csv(Path(args.csv), out, args.target, delimiter, args.csv)
    labels = f", {len(done['labels'])} classes" if done["labels"] else ""
    print(f"wrote {out}: {done['rows']:,} rows of {done['features']} features{labels} "
          f"({', '.join(done['files'])}); train on it with data = npy(\"{out}\")")
    return 0


def cmd_sweep(args) -> int:
    from .sweep.command import run
    return run(args)


COMMANDS = {"resume": cmd_resume, "check": cmd_check, "summary": cmd_summary, "train": cmd_train,
            "export": cmd_export, "import": cmd_import, "predict": cmd_predict, "fmt": cmd_fmt,
            "graph": cmd_graph, "lsp": cmd_lsp,
            "eval": cmd_eval, "report": cmd_report, "sweep": cmd_sweep, "bench": cmd_bench,
            "convert": cmd_convert}


def main(argv=None) -> int:
    # OpenBLAS's threads spin 2^28 cycles after each product by default, holding the cores
    # nnspec's workers need (CNN steps 1.4x slower); 2^18 here. Read once, when NumPy loads: set before.
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")
    # NumPy's floating-point warnings name nnspec's files and lines; a run that blows up is
    # reported by the trainer (at its batch), and the worker threads do not share np.errstate
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"nnspec\.")
    args, unknown = parser().parse_known_args(argv)
    if unknown:                    # said by the command's own parser, with its usage, not the top level's
        args.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    from .errors import SpecError
    try:
        return COMMANDS[args.command](args)
    except SpecError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except MemoryError as e:
        print(f"nnspec: error: out of memory: {e}; the model or its data is too large for this "
              f"machine (`nnspec check` needs no memory for weights)", file=sys.stderr)
        return 1
    except OSError as e:                         # an output that cannot be written
        print(f"nnspec: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    except Exception as e:  # a user's input never gets here; a bug does, and says so briefly
        from .data import DataError
        from .runtime import DeviceError
        if isinstance(e, DataError):
            print(e.diagnostic().render(), file=sys.stderr)
            return 1
        if isinstance(e, DeviceError):
            print(f"error: {e}", file=sys.stderr)
            return 1
        if os.environ.get("NNSPEC_DEBUG"):
            raise
        print(f"nnspec: internal error: {type(e).__name__}: {e}\n"
              f"(this is a bug in nnspec; rerun with NNSPEC_DEBUG=1 for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
