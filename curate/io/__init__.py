"""Reading raw Q&A in any supported format, and writing canonical frames atomically."""

from curate.io.decode import InputError
from curate.io.load import LoadResult, load, read_frame
from curate.io.writers import (
    atomic_path,
    atomic_write_text,
    default_output,
    write_frame,
    write_records,
    write_rejects,
)

__all__ = [
    "InputError",
    "LoadResult",
    "atomic_path",
    "atomic_write_text",
    "default_output",
    "load",
    "read_frame",
    "write_frame",
    "write_records",
    "write_rejects",
]
