"""The course's fixed, named settings: one place for the seed and the data root."""

import os
from pathlib import Path

SEED = 0
"""The seed every notebook starts from, so stored outputs are stable."""

DATA_ROOT = Path(os.environ.get("COURSE_DATA_ROOT", Path.home() / ".cache" / "autodiff-course" / "data"))
"""Where data sets are downloaded (override with the COURSE_DATA_ROOT environment variable)."""
