"""atheris fuzz targets (coverage-guided, libFuzzer): ``python -m fuzz.<target> [libFuzzer flags]``.

Each target feeds hostile bytes to one parser and lets only its documented error through; any
other exception is a crash that atheris reports (with the input saved as ``crash-<sha1>``).
``make fuzz`` runs each for a while; tests/hardening/test_atheris.py runs each briefly.
"""
