"""The bottom layer both halves share (curate and train): errors, vocabulary, coercion, the stage
protocol and the epochs table. Standard library only, so `--help` can import any of it."""
