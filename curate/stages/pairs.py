"""pairs: DPO preference pairs from scored answers or generated rejections (global scope)."""

from __future__ import annotations

from curate.core.stage import Scope, Stage
from curate.core.vocab import TEACHER_CLIENT_SETTINGS


class Pairs(Stage):
    name = "pairs"
    suffix = "paired"
    scope = Scope.GLOBAL
    help = "Build DPO preference pairs."
    module = "curate.pairs"
    config = "curate.configs.pairs:PairsConfig"
    command = "curate.commands.pairs:pairs"
    aliases = {"mode": "modes"}  # `--mode` on the command line
    path_options = ("model",)
    output_options = ("cache",)
    model_options = ("model",)
    key_exclude = TEACHER_CLIENT_SETTINGS

    def models(self) -> list[str]:
        config = self.config_value
        if "generated" in getattr(config, "modes", ()):
            return config.generator_models()
        return []

    def run(self, frame):
        return self.stage_function()(frame, self.config_value, progress=self.ctx.progress)
