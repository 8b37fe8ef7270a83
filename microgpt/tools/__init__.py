"""The tools around the model: the command line, the benchmark and the profilers."""
