"""The lab's own PPO for RLHF: loop.py (rollouts through our engine, value model, adaptive KL,
checkpoints, the rlhf-ppo stage) and losses.py (GAE, the clipped policy and value losses, whitening)."""
