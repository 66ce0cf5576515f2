"""Training SAM-style models: prompt simulation (prompts.py) and losses (losses.py) as in the
SAM paper, App. A."""
