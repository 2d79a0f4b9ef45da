"""select: thresholds, target size, diversity and a held-out split (global scope)."""

from __future__ import annotations

from curate.core.stage import Scope, Stage


class Select(Stage):
    name = "select"
    suffix = "selected"
    scope = Scope.GLOBAL
    help = "Pick a diverse, high-quality subset and a held-out split."
    module = "curate.select"
    config = "curate.configs.select:SelectConfig"
    command = "curate.commands.select:select"
    code = ("curate.embed",)
    path_options = ("embed_model",)
    model_options = ("embed_model",)

    def models(self) -> list[str]:
        config = self.config_value
        uses_embeddings = getattr(config, "diversity", None) is not None or (
            getattr(config, "eval_size", None) and getattr(config, "split_semantic", None)
        )
        return [config.embed_model] if uses_embeddings else []
