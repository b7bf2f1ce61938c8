"""The package's version, in a module of its own so that any layer may read it (the package's `__init__`
is the public face, which nothing inside the package imports)."""

__version__ = "0.1.0"
