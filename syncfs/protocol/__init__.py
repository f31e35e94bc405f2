"""The syncfs wire protocol: sans-I/O framing, messages, entries, paths, version vectors.

Nothing here imports trio or pyfuse3, so the tracker, the peer and the fuzzers share it.
"""

PROTO_NAME = "syncfs"
PROTO_VERSION = 2
