"""Min-cut bounds on the Schmidt rank of any input partition (public names in __all__)."""

__all__: list[str] = []
