"""`make test` runs pytest-xdist with `--dist loadgroup`: tests of one `xdist_group` share a
worker, so the multi-process runs take turns and a module's expensive fixture is built once."""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("probe")
def test_a_grouped_test_is_scheduled_as_its_group(request):
    # pytest 9.2 builds node ids from a new field, so pytest-xdist 3.8 could no longer tag them
    # with the group: every group was silently spread over the workers (pyproject pins < 9.2).
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not under pytest-xdist --dist loadgroup (TEST_WORKERS=1)")
    assert request.node.nodeid.endswith("@probe"), request.node.nodeid


@pytest.mark.distributed
def test_a_multi_process_test_joins_the_distributed_group(request):
    """conftest.py gives every `distributed` test the group (its ranks take a core each)."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not under pytest-xdist --dist loadgroup (TEST_WORKERS=1)")
    assert request.node.nodeid.endswith("@distributed"), request.node.nodeid
