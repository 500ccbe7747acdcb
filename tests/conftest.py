import os
import sys

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

# CI runs a fixed example budget per property test (derandomized: reproducible); `--hypothesis-profile
# deep` (or XNN_HYPOTHESIS_PROFILE=deep) runs many more on demand.
_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=25, derandomize=True, **_common)
settings.register_profile("dev", max_examples=60, **_common)
settings.register_profile("deep", max_examples=1000, **_common)
settings.load_profile(os.environ.get("XNN_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def line_reads(monkeypatch):
    """The (recognizer name, line index) pairs the readers ask _LineCache for, in order."""
    from xnn.ocr import apps

    read = []
    orig = apps._LineCache.get

    def spy(self, name, k):
        read.append((name, k))
        return orig(self, name, k)
    monkeypatch.setattr(apps._LineCache, "get", spy)
    return read
