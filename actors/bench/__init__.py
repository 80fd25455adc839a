"""Micro-benchmarks of the Thespian layer that licpool's actor shell sits on."""
