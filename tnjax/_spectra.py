"""Schmidt spectra and entropies of tree networks (public names in __all__)."""

__all__: list[str] = []
