"""tamis curate: turn raw domain Q&A into a clean, scored fine-tuning set."""

__version__ = "0.1.0"
