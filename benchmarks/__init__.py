"""emovid's benchmarks: run each from the repository root as a module, e.g. `python -m benchmarks.run_all --help`."""
