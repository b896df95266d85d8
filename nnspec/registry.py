"""A small helper for the registries of train options (losses, optimizers,
schedules, data sets): name -> class, filled by a decorator."""
from __future__ import annotations


class Registry(dict):
    def __init__(self, what: str):
        super().__init__()
        self.what = what            # "loss", "optimizer", ...: used in messages

    def register(self, cls):
        """Register a class by its `kind` (a pydantic Literal field's default, or a class attribute)."""
        fields = getattr(cls, "model_fields", {})
        self[fields["kind"].default if "kind" in fields else cls.kind] = cls
        return cls
