"""`train`: the training half of tamis (TRL + PEFT), driven by curated records."""

__version__ = "0.1.0"
