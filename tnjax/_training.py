"""Public names of tnjax's training features (re-exported by tnjax/__init__.py)."""

__all__: list[str] = []
