"""One pytest process's run state: worker and test contexts, the worker zygote, scheduling."""
