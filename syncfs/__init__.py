"""syncfs: one directory tree kept identical across machines through a FUSE mount."""

__version__ = "0.1.0"
