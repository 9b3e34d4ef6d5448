"""The ``hpcdist`` command line: the top layer, built on the library's public API."""
