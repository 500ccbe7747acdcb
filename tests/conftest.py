import os
import sys

from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

# CI runs a fixed example budget per property test (derandomized: reproducible); `--hypothesis-profile
# deep` (or XNN_HYPOTHESIS_PROFILE=deep) runs many more on demand.
_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=25, derandomize=True, **_common)
settings.register_profile("dev", max_examples=60, **_common)
settings.register_profile("deep", max_examples=1000, **_common)
settings.load_profile(os.environ.get("XNN_HYPOTHESIS_PROFILE", "ci"))
