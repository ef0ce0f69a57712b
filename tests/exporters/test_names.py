import importlib.util

import optsearch
from optsearch import exporters


def test_the_export_function_and_its_package_have_different_names():
    """`optsearch.export` is the function; the package is `optsearch.exporters` (one name per thing)."""
    assert callable(optsearch.export) and optsearch.export is exporters.export
    assert importlib.util.find_spec("optsearch.export") is None
    assert importlib.util.find_spec("optsearch.exporters") is not None
