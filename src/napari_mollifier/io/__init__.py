"""Reading images and tables, preprocessing, and writing results."""

from ._atomic import atomic_write_bytes, atomic_write_text

__all__ = ["atomic_write_bytes", "atomic_write_text"]
