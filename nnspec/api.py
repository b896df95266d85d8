"""The public Python API: load a spec, build a network, train it."""
from __future__ import annotations

from pathlib import Path

from .lazy import np

from . import spec as S
from . import syntax
from .compile import compile_model, model_parameters
from .config import TrainConfig, train_config
from .data import Source
from .errors import Collector, Diagnostic, Span, SpecError, did_you_mean
from .files import MAX_SPEC_BYTES, not_readable
from .graph import Graph
from .overrides import as_setting, parse_overrides
from .sweep.declare import check_sweep


class Spec:
    """A checked spec: its graph (every shape inferred) and its train settings."""

    def __init__(self, source: str, file: str, graph: Graph, train: TrainConfig | None):
        self.source, self.file = source, file
        self.graph, self.train = graph, train
        self.parameters: dict = {}          # the model's parameters as compiled (defaults and --set)

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def base_dir(self) -> Path:
        """Where relative paths in the train block start: the spec's folder."""
        p = Path(self.file)
        return p.parent if p.is_file() else Path.cwd()

    def build(self, seed: int | None = None, dtype: str = "float32"):
        """A network with freshly initialised weights (the same seed, the same weights)."""
        from .engine import Network
        if seed is None:
            seed = self.train.seed if self.train else 0
        rng = np.random.default_rng(seed)
        dt = np.dtype(dtype)
        params, state = {}, {}
        for n in self.graph.nodes:
            for local, a in n.op.init(n.p, n.in_shapes, rng, dt, n.init_hint).items():
                params[n.param(local)] = a.astype(dt, copy=False)
            for local, a in n.op.init_state(n.p, n.in_shapes, dt).items():
                state[n.param(local)] = a.astype(dt, copy=False)
        loss = self.train.loss if self.train else None
        if isinstance(loss, dict):                  # a loss per output
            from .heads import Heads
            loss = Heads(self.graph, loss, self.train.loss_weights)
        net = Network(self.graph, params, state, dt, loss=loss, seed=seed)
        net.target_column = getattr(self.train.data, "target", None) if self.train else None
        return net


def loads(text: str, name: str = "<spec>", overrides=None, sweep=()) -> Spec:
    """Parse, validate and compile spec text; raises SpecError with every
    error found. `overrides`: {name: value} or ["name=value", ...] for model
    parameters and train settings, as `--set` gives them (overrides.py).
    `sweep`: `nnspec sweep`'s options as sweep items (sweep/declare.py)."""
    text = text.removeprefix("\ufeff")            # a byte-order mark some editors write
    sets = parse_overrides(overrides or {})
    sf = syntax.parse(text, name)
    coll = Collector(name, text)
    coll.extend(sf.errors)
    model = sf.models[0] if sf.models else None
    train = sf.trains[0] if sf.trains else None
    known = {p.name for p in model.params} if model else set()
    for key, value in sets.items():
        if key in known:
            continue
        if key not in TrainConfig.model_fields:
            coll.error(value.span, f"no model parameter or train setting `{key}`"
                                   f"{did_you_mean(key, [*known, *TrainConfig.model_fields])}")
        elif train is None:
            coll.error(value.span, f"`{key}` is a train setting, and this spec has no train block")
        else:                                       # the spec's own setting gives way
            kept = [st for st in train.settings if st.key != key]
            train = S.Train.model_construct(span=train.span, settings=[*kept, as_setting(key, value)])
    params = model_parameters(model, sets, coll, TrainConfig.model_fields) if model else {}
    graph = None
    if params is not None:
        try:
            graph = compile_model(sf, coll, params)
        except RecursionError:
            coll.error(Span(name, 1, 1), "the spec nests too deeply to compile (an expression of thousands of terms?)")
            coll.raise_if_any()
    for extra in sf.trains[1:]:
        coll.error(extra.span, "a file holds one train block; this is a second")
    # a parameter that failed would fail every use of it too: the train block waits for it
    cfg = train_config(train, coll, None, params) if params is not None else None
    if graph is not None and cfg is not None:
        _check_training(sf, graph, cfg, coll)
    plan = check_sweep(sf, train, params, graph, cfg, coll, sweep)
    coll.raise_if_any()
    spec = Spec(text, name, graph, cfg)
    spec.parameters = params
    spec.sweep = plan                       # the checked sweep (or None)
    return spec


def load(path, overrides=None, sweep=()) -> Spec:
    path = Path(path)
    problem = not_readable(path)
    if problem is None and path.stat().st_size > MAX_SPEC_BYTES:
        problem = f"{path.stat().st_size:,} bytes; a spec is at most {MAX_SPEC_BYTES:,}"
    try:
        if problem:
            raise ValueError(problem)
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, ValueError) as e:              # UnicodeDecodeError is a ValueError
        reason = getattr(e, "strerror", None) or str(e)
        raise SpecError([Diagnostic(str(path), 0, 0, f"cannot read spec: {reason}")]) from None
    return loads(text, str(path), overrides, sweep)


def _check_training(sf, graph: Graph, cfg: TrainConfig, coll: Collector) -> None:
    """What the train block asks of the model, checked before any data is
    read: one output, one the loss fits, and gradients everywhere the loss
    needs them."""
    producer = graph.producer()
    last = producer.get(graph.outputs[0])
    loss_span = cfg.spans.get("loss")
    if isinstance(cfg.loss, dict):
        return _check_heads(sf, graph, cfg, coll)
    if len(graph.outputs) > 1:
        stmt = next(st for st in sf.models[0].body if isinstance(st, S.Output))
        names = ", ".join(f"`{n}`" for n in graph.output_names)
        coll.error(stmt.span, f"the model has {len(graph.outputs)} outputs ({names}), but training "
                              f"with one loss would train only the first and export the others "
                              f"untrained; give a loss per output, as in `loss = {{{graph.output_names[0]}: "
                              f"mse, ...}}`, or leave out the train block to only build and export the model")
        return
    for key in ("data", "validation"):
        if isinstance(getattr(getattr(cfg, key), "target", None), dict):
            coll.error(cfg.spans.get(key), f"`{key}`: `target={{...}}` gives a target per output, for a loss "
                                           f"per output (`loss = {{{graph.output_names[0]}: ...}}`); with one "
                                           f"loss name one target, such as target=\"label\"")
    problem = cfg.loss.output_problem(last, graph.values[graph.outputs[0]].shape)
    if problem and (last is None or last.op.differentiable):      # else the error below says more
        where = [f"the model's output comes from {last.span}"] if last is not None else []
        coll.error(loss_span, problem, where)
    _check_common(graph, cfg, coll)
    for n in graph.nodes:
        if n.op.differentiable:
            continue
        if n is last and cfg.loss.pre_activation == n.kind:
            continue
        coll.error(n.span, f"{n.op.no_grad_hint or f'`{n.kind}` has no gradient'}; "
                           f"the loss is `{cfg.loss.kind}`", n.notes)


def _check_common(graph: Graph, cfg: TrainConfig, coll: Collector) -> None:
    """What one output and several share: the data sources against the model, `freeze`, `augment`."""
    for key in ("data", "validation"):
        source = getattr(cfg, key)
        if isinstance(source, Source):
            training = cfg.data if key == "validation" else None
            for message, notes in source.model_problems(graph, training):
                coll.error(cfg.spans.get(key), f"`{key}`: {message}", notes)
    _check_freeze(graph, cfg, coll)
    if cfg.augment:
        _check_augment(graph, cfg, coll)


def _check_augment(graph: Graph, cfg: TrainConfig, coll: Collector) -> None:
    """Augmentation changes images, float32[C, H, W] inputs: the model needs
    one, and each kind's settings must suit its size."""
    from .data.augment import is_image
    images = [v for v in graph.inputs if is_image(v)]
    if not images:
        shown = ", ".join(f"`{v.name}: {v.dtype}{list(v.shape)}`" for v in graph.inputs)
        coll.error(cfg.spans.get("augment"), f"`augment` changes images, inputs of type float32[C, H, W]; "
                                             f"this model's inputs are {shown}")
        return
    for i, kind in enumerate(cfg.augment):
        for v in images:
            problem = kind.problem(tuple(v.shape))
            if problem:
                coll.error(cfg.spans.get(f"augment.{i}", cfg.spans.get("augment")),
                           f"`augment`: {problem} (input `{v.name}` is {v.dtype}{list(v.shape)})")
                break


def _check_freeze(graph: Graph, cfg: TrainConfig, coll: Collector) -> None:
    names = {"/".join(n.name.split("/")[:i]) for n in graph.nodes for i in range(1, n.name.count("/") + 2)}
    for name in cfg.freeze or ():
        if name not in names:
            coll.error(cfg.spans.get("freeze"), f"`freeze`: no layer or block `{name}`"
                                                f"{did_you_mean(name, names)}")


def _check_heads(sf, graph: Graph, cfg: TrainConfig, coll: Collector) -> None:
    """A loss per output (`loss = {recon: mse, cls: cross_entropy}`): every
    output has one, each name is an output, each loss fits its output; the
    weights, metrics and watched column name outputs too."""
    from .metrics import task_problem
    from .heads import columns_problem
    outputs = graph.output_names
    by_name = dict(zip(outputs, graph.outputs))
    producer = graph.producer()
    for key in ("loss", "loss_weights"):
        for name in (getattr(cfg, key) or {}):
            if name not in by_name:
                coll.error(cfg.spans.get(f"{key}.{name}", cfg.spans.get(key)),
                           f"`{key}`: the model has no output `{name}` (its outputs are "
                           f"{', '.join(outputs)}){did_you_mean(name, outputs)}")
    missing = [o for o in outputs if o not in cfg.loss]
    if missing:
        coll.error(cfg.spans.get("loss"), f"`loss` gives no loss for output "
                                          f"{', '.join(f'`{o}`' for o in missing)}; every output is trained, "
                                          f"so each needs one (`{missing[0]}: mse`, ...)")
    ends = {}                                  # output -> its last node, when its loss fits it
    for o, loss in cfg.loss.items():
        if o not in by_name:
            continue
        last = producer.get(by_name[o])
        problem = loss.output_problem(last, graph.values[by_name[o]].shape)
        if problem and (last is None or last.op.differentiable):
            where = [f"output `{o}` comes from {last.span}"] if last is not None else []
            coll.error(cfg.spans.get(f"loss.{o}", cfg.spans.get("loss")), f"output `{o}`: {problem}", where)
        ends[o] = last
    tasks = {o: loss.task for o, loss in cfg.loss.items() if o in by_name}
    for metric in cfg.metrics or ():
        problems = [task_problem(metric, t) for t in tasks.values()]
        if problems and all(problems):
            coll.error(cfg.spans.get("metrics"), f"`metrics`: `{metric}` fits none of the outputs' losses "
                                                 f"({', '.join(f'{o}: {cfg.loss[o].kind}' for o in tasks)})")
    if cfg.monitor is not None:
        problem = columns_problem(cfg.monitor, tasks, cfg.validation is not None)
        if problem:
            coll.error(cfg.spans.get("monitor"), problem)
    _check_common(graph, cfg, coll)
    absorbed = {id(ends[o]) for o in ends if ends[o] is not None and cfg.loss[o].pre_activation == ends[o].kind}
    for n in graph.nodes:
        if n.op.differentiable or id(n) in absorbed:
            continue
        coll.error(n.span, f"{n.op.no_grad_hint or f'`{n.kind}` has no gradient'}; "
                           f"the losses are {', '.join(f'{o}: {loss.kind}' for o, loss in cfg.loss.items())}",
                   n.notes)
