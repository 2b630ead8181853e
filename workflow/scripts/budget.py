"""The active_budget rule's job: `select`'s --config file with the rounds' batch size (config key active.batch,
a share of the cell's training videos or a count; solireward.active.rounds.write_budget)."""

from pathlib import Path

from solireward.active.rounds import write_budget

size = write_budget(snakemake.input.videos, snakemake.params.batch, snakemake.output.budget)  # noqa: F821
Path(snakemake.log[0]).write_text(f"batch_size {size}\n", encoding="utf-8")  # noqa: F821
