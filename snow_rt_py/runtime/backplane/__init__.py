"""Backplanes: how rooms reach the members of other nodes (base.py: the interface; local.py: in-process, the
default; redis_*.py: Redis pub/sub, with ``cluster_url``)."""
