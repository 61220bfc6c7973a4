"""The ``autotts`` command line: thin commands over :mod:`autotts_gym` and the optional
layers :mod:`autotts_discovery` and :mod:`autotts_rl`."""
