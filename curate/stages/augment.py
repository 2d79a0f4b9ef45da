"""augment: few-shot, chain-of-thought and rephrased variants (global scope: adds rows)."""

from __future__ import annotations

from curate.core.stage import Scope, Stage
from curate.core.vocab import TEACHER_CLIENT_SETTINGS


class Augment(Stage):
    name = "augment"
    suffix = "augmented"
    scope = Scope.GLOBAL
    help = "Few-shot, chain-of-thought and rephrased variants."
    module = "curate.augment"
    config = "curate.configs.augment:AugmentConfig"
    command = "curate.commands.augment:augment"
    code = ("curate.augment", "curate.embed")
    # (a recipe's paths are resolved before its deprecated keys are renamed: teacher is model)
    path_options = ("model", "teacher", "embed_model", "templates")
    output_options = ("cache",)
    model_options = ("model", "embed_model")
    key_exclude = (*TEACHER_CLIENT_SETTINGS, "batch_size")

    def models(self) -> list[str]:
        config = self.config_value
        out = []
        if getattr(config, "fewshot", 0):
            out.append(config.embed_model)
        if getattr(config, "cot", False):
            out += config.generator_models()
        return out

    def run(self, frame):
        return self.stage_function()(frame, self.config_value, progress=self.ctx.progress)
