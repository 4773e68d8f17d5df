"""Migration corpora: legacy projects the migration tool is run on, not tests of this repository."""

collect_ignore = ["greenhouse"]
