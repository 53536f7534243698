"""Experiments built from the stages: the scaling sweep, the math-rewards grid,
the RLHF-methods comparison, goodhart and over-optimization, the reward-model data scaling, and the
benchmarks behind `lab bench`. Each writes under RUN/experiments/<name>/."""
