import os

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def _root_for_integration(request):
    """Integration tests drive real namespaces: they need root, which CI has."""
    if any("tests/integration" in str(i.fspath) for i in request.session.items) and os.geteuid() != 0:
        pytest.exit("integration tests need root (network namespaces, mounts)", returncode=2)
