"""The package's version, in a module of its own so a module inside the package can read it without importing the
package facade (``specflow_nb/__init__``, which re-exports and lazily offers the panel)."""

__version__ = "0.1.0"
