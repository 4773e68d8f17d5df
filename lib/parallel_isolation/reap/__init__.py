"""The orphan reaper: removes what dead runs left behind, and only that."""
