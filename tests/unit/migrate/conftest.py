"""The fixture projects under fixtures/ are inputs of the migration tool, not tests."""

collect_ignore = ["fixtures"]
