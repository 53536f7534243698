"""Every training stage: pretraining (with DDP/FSDP), SFT, math practice, RL on math, RLHF, our PPO,
DPO, and the plumbing they share with TRL (trainers.py). A stage reads its parents' folders in a run
directory and writes its own."""
