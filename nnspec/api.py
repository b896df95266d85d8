"""The public Python API: load a spec, build a network, train it."""
from __future__ import annotations

from pathlib import Path

from .lazy import np

from . import syntax
from .compile import compile_model
from .config import TrainConfig, train_config
from .errors import Collector, Diagnostic, SpecError
from .graph import Graph


class Spec:
    """A checked spec: its graph (every shape inferred) and its train settings."""

    def __init__(self, source: str, file: str, graph: Graph, train: TrainConfig | None):
        self.source, self.file = source, file
        self.graph, self.train = graph, train

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
        net = Network(self.graph, params, state, dt, loss=loss, seed=seed)
        net.target_column = getattr(self.train.data, "target", None) if self.train else None
        return net


def loads(text: str, name: str = "<spec>") -> Spec:
    """Parse, validate and compile spec text; raises SpecError with every error found."""
    sf = syntax.parse(text, name)
    coll = Collector(name, text)
    graph = compile_model(sf, coll)
    for extra in sf.trains[1:]:
        coll.error(extra.span, "a file holds one train block; this is a second")
    cfg = train_config(sf.trains[0] if sf.trains else None, coll, None)
    if graph is not None and cfg is not None:
        _check_trainable(graph, cfg, coll)
    coll.raise_if_any()
    return Spec(text, name, graph, cfg)


def load(path) -> Spec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = "no such file" if isinstance(e, FileNotFoundError) else getattr(e, "strerror", None) or str(e)
        raise SpecError([Diagnostic(str(path), 0, 0, f"cannot read spec: {reason}")]) from None
    return loads(text, str(path))


def _check_trainable(graph: Graph, cfg: TrainConfig, coll: Collector) -> None:
    """An op without a gradient may only sit where the loss absorbs it."""
    producer = graph.producer()
    last = producer.get(graph.outputs[0])
    for n in graph.nodes:
        if n.op.differentiable:
            continue
        if n is last and cfg.loss.pre_activation == n.kind:
            continue
        coll.error(n.span, f"{n.op.no_grad_hint or f'`{n.kind}` has no gradient'}; "
                           f"the loss is `{cfg.loss.kind}`", n.notes)
