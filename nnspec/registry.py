"""The one registry mechanism: name -> kind, filled by a decorator. Ops,
losses, optimizers, schedules, metrics, data sources and data sets each have
one, and every lookup of a name a spec wrote goes through one."""
from __future__ import annotations


class Registry(dict):
    def __init__(self, what: str, instances: bool = False):
        super().__init__()
        self.what = what                # "loss", "optimizer", ...: used in messages
        self.instances = instances      # store one instance of each class (ops), not the class

    def register(self, kind):
        """Register a class (or function) by its `kind`: a pydantic Literal
        field's default, or a class attribute. Returns it, as a decorator must."""
        fields = getattr(kind, "model_fields", {})
        name = fields["kind"].default if "kind" in fields else kind.kind
        if name in self:
            raise ValueError(f"two {self.what}s are registered as `{name}`")
        self[name] = kind() if self.instances else kind
        return kind
