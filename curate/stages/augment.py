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
    config = "curate.augment:AugmentConfig"
    command = "curate.commands.augment:augment"
    code = ("curate.augment", "curate.embed")
    path_options = ("teacher", "embed_model", "templates")
    output_options = ("cache",)
    model_options = ("teacher", "embed_model")
    key_exclude = (*TEACHER_CLIENT_SETTINGS, "batch_size")

    def models(self) -> list[str]:
        config = self.config_value
        out = []
        if getattr(config, "fewshot", 0):
            out.append(config.embed_model)
        if getattr(config, "cot", False):
            if config.teacher:
                out.append(config.teacher)
            else:  # never a query string or user:password (an API key can ride there) in keys and manifests
                from curate.augment.teachers import endpoint_urls

                out.append(f"{endpoint_urls(config.teacher_url)[1]}#{config.teacher_model}")
        return out

    def run(self, frame):
        return self.stage_function()(frame, self.config_value, progress=self.ctx.progress)
