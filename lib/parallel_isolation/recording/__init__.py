"""What a run records while it runs: resource snapshots, leaks per test, the recorder plugin."""
