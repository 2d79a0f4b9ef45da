"""The settings of the model that writes text, shared by augment and pairs: declared in the light
:mod:`curate.configs.augment` (for `--help`), re-exported here, where they always were."""

from __future__ import annotations

from curate.configs.augment import (  # noqa: F401  (re-exported)
    GeneratorConfig,
    check_teacher_limits,
    generator_field,
    setting,
)
