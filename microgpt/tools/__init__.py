"""The tools around the model: the benchmark's timing and report, and the command line."""
